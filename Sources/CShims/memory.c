#include <malloc.h>

#include "CShims.h"

void smime_milter_set_mmap_threshold(int bytes) {
    // Setting it also turns off glibc's dynamic adjustment of the threshold.
    mallopt(M_MMAP_THRESHOLD, bytes);
}
