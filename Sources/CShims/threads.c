// Why this file exists: pthread_setname_np is a GNU extension that Swift's Glibc module does not
// declare (it needs _GNU_SOURCE), and Foundation's Thread.name does not reach the system on
// Linux. Named threads show in `top -H`, in core dumps, and to the benchmarks.
#define _GNU_SOURCE
#include <pthread.h>

#include "CShims.h"

void smime_milter_name_thread(const char *name) {
    pthread_setname_np(pthread_self(), name);
}
