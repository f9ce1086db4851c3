// Why this file exists: OpenSSL 3 frees its global and per-thread state from an atexit()
// handler. A thread still inside OpenSSL when the process exits (a CRL download past its
// budget, a milter thread finishing a message after SIGTERM) then runs on freed state, and
// the error queue it holds is never returned (its thread-exit destructor is gone). The
// process is ending anyway, so the daemon and its tests ask OpenSSL to leave that cleanup to
// the system. The choice must come with OpenSSL's first initialisation, so it is made before
// main() runs; libraries loaded later (p11-kit modules such as SoftHSM) find OpenSSL
// initialised.
#include <openssl/crypto.h>

__attribute__((constructor)) static void smime_milter_openssl_without_atexit(void) {
    OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL);
}
