// Why this file exists: libmilter's smfi_main() starts a thread that waits for SIGHUP, SIGTERM
// and SIGINT with sigwait() and then stops the milter at once: SIGHUP ends the daemon instead
// of reloading, SIGINT abandons messages in flight. There is no API to turn that thread off.
// The daemon wants SIGHUP to reload and SIGTERM/SIGINT to finish messages in flight, so it
// waits for those signals on a thread of its own with sigwaitinfo(). sigwait() defined here
// takes precedence over libc's for libmilter's call (an executable's definition interposes on
// a shared library's reference); once smime_milter_take_signals() has run, it parks the caller
// for good, so libmilter's thread never competes for the signals.
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

#include "CShims.h"

static atomic_int smime_milter_signals_taken = 0;

void smime_milter_take_signals(void) {
    atomic_store(&smime_milter_signals_taken, 1);
}

int sigwait(const sigset_t *restrict set, int *restrict sig) {
    if (atomic_load(&smime_milter_signals_taken)) {
        for (;;) {
            pause();
        }
    }
    int received = sigwaitinfo(set, NULL);
    if (received < 0) {
        return errno;
    }
    *sig = received;
    return 0;
}
