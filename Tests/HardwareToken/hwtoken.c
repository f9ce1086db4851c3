/*
 * hwtoken: a PKCS#11 module for the tests that behaves like the USB tokens the province uses,
 * at their worst. It forwards every call to SoftHSM and, for each token that has a control
 * directory $HWTOKEN_DIR/<token label>/, adds what SoftHSM does not do:
 *
 *   latency_ms       each C_Sign takes this long, and signatures are made one at a time per
 *                    token, across threads and processes (flock on device.lock)
 *   max_sessions     sessions the token allows; one more is CKR_SESSION_COUNT, and
 *                    C_GetTokenInfo reports it as ulMaxSessionCount
 *   max_pin_tries    wrong user PINs before the PIN locks; the count lives in pin_failures, so
 *                    restarts see it, and the CKF_USER_PIN_* flags follow it
 *   hang             while this file exists, C_Sign does not return (holding the device)
 *   removed          while this file exists, the token is not in its slot: calls answer
 *                    CKR_DEVICE_REMOVED or CKR_TOKEN_NOT_PRESENT, including a C_Sign already
 *                    under way, and sessions opened before are invalid afterwards
 *   replugged        the token was pulled out and put back since the last call: the next call
 *                    finds every session opened before invalid (the file is then removed)
 *   vanish_in_login  the next C_Login finds the token pulled out (creates removed)
 *   flags            hexadecimal CKF_* bits added to the token's flags (contradictory flags)
 *
 * and counts, in files of the same directory: login_calls (every user C_Login), wrong_logins
 * (those SoftHSM refused), signs (signatures returned).
 *
 * Settings are read at every call, so a test changes them while a daemon runs. Tokens without
 * a control directory pass through untouched. $HWTOKEN_DIR defaults to the folder "control"
 * beside this library. The underlying module is $HWTOKEN_MODULE, else the file beside this
 * library with ".real" added to its name (a copy of SoftHSM: a process that also loads SoftHSM
 * itself must not share that instance, since PKCS#11 allows one C_Initialize per module).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

#define EXPORT __attribute__((visibility("default")))

static CK_FUNCTION_LIST *real;
static CK_FUNCTION_LIST list;
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;

/* MARK: the tokens seen */

#define MAX_SLOTS 64

struct slot_state {
    CK_SLOT_ID id;
    char label[33];
    long sessions;
    int was_removed; /* the removed file was there at the last look */
};

static struct slot_state slots[MAX_SLOTS];
static int slot_count;

/* This library's own path, for the files beside it. */
static const char *own_path(void) {
    static char path[PATH_MAX];
    if (!path[0]) {
        Dl_info info;
        if (dladdr((void *)own_path, &info) && info.dli_fname) snprintf(path, sizeof path, "%s", info.dli_fname);
    }
    return path;
}

static const char *control_root(void) {
    static char fallback[PATH_MAX];
    const char *root = getenv("HWTOKEN_DIR");
    if (root && *root) return root;
    if (!fallback[0]) {
        snprintf(fallback, sizeof fallback, "%s", own_path());
        char *slash = strrchr(fallback, '/');
        if (!slash) return NULL;
        snprintf(slash, sizeof fallback - (size_t)(slash - fallback), "/control");
    }
    return fallback;
}

/* The slot's entry, with its label read from the real module on first sight. */
static struct slot_state *slot_for(CK_SLOT_ID id) {
    pthread_mutex_lock(&table_lock);
    for (int i = 0; i < slot_count; i++) {
        if (slots[i].id == id) {
            pthread_mutex_unlock(&table_lock);
            return &slots[i];
        }
    }
    pthread_mutex_unlock(&table_lock);
    CK_TOKEN_INFO info;
    if (real->C_GetTokenInfo(id, &info) != CKR_OK) return NULL;
    char label[33];
    memcpy(label, info.label, 32);
    label[32] = 0;
    for (int i = 31; i >= 0 && label[i] == ' '; i--) label[i] = 0;
    pthread_mutex_lock(&table_lock);
    struct slot_state *state = NULL;
    for (int i = 0; i < slot_count; i++) {
        if (slots[i].id == id) state = &slots[i];
    }
    if (!state && slot_count < MAX_SLOTS) {
        state = &slots[slot_count++];
        memset(state, 0, sizeof *state);
        state->id = id;
        memcpy(state->label, label, sizeof label);
    }
    pthread_mutex_unlock(&table_lock);
    return state;
}

static struct slot_state *slot_of_session(CK_SESSION_HANDLE session) {
    CK_SESSION_INFO info;
    if (real->C_GetSessionInfo(session, &info) != CKR_OK) return NULL;
    return slot_for(info.slotID);
}

/* MARK: the control directory */

/* Path of a control file for a token; 0 when the token has no control directory. */
static int control_path(const struct slot_state *slot, const char *name, char *out, size_t size) {
    const char *root = control_root();
    if (!root || !slot || !slot->label[0]) return 0;
    struct stat info;
    snprintf(out, size, "%s/%s", root, slot->label);
    if (stat(out, &info) != 0 || !S_ISDIR(info.st_mode)) return 0;
    snprintf(out, size, "%s/%s/%s", root, slot->label, name);
    return 1;
}

static int controlled(const struct slot_state *slot) {
    char path[PATH_MAX];
    return control_path(slot, "", path, sizeof path);
}

static int exists(const struct slot_state *slot, const char *name) {
    char path[PATH_MAX];
    return control_path(slot, name, path, sizeof path) && access(path, F_OK) == 0;
}

/* A number in a control file, or `fallback` when there is none. */
static long number(const struct slot_state *slot, const char *name, long fallback, int base) {
    char path[PATH_MAX];
    if (!control_path(slot, name, path, sizeof path)) return fallback;
    FILE *file = fopen(path, "r");
    if (!file) return fallback;
    char text[64] = {0};
    size_t length = fread(text, 1, sizeof text - 1, file);
    fclose(file);
    if (length == 0) return fallback;
    return strtol(text, NULL, base);
}

static void set_number(const struct slot_state *slot, const char *name, long value) {
    char path[PATH_MAX], temporary[PATH_MAX + 16];
    if (!control_path(slot, name, path, sizeof path)) return;
    snprintf(temporary, sizeof temporary, "%s.%d", path, (int)getpid());
    FILE *file = fopen(temporary, "w");
    if (!file) return;
    fprintf(file, "%ld\n", value);
    fclose(file);
    rename(temporary, path);
}

/* Holds a token-wide lock file: the device does one thing at a time, whoever asks. */
static int lock_file(const struct slot_state *slot, const char *name) {
    char path[PATH_MAX];
    if (!control_path(slot, name, path, sizeof path)) return -1;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) {
        while (flock(fd, LOCK_EX) != 0 && errno == EINTR) {
        }
    }
    return fd;
}

static void unlock_file(int fd) {
    if (fd >= 0) close(fd); /* closing the description releases the flock */
}

/* Adds one to a counter file, under the counters' own lock (other processes count too). */
static void count(const struct slot_state *slot, const char *name) {
    int fd = lock_file(slot, "counters.lock");
    if (fd < 0) return;
    set_number(slot, name, number(slot, name, 0, 10) + 1);
    unlock_file(fd);
}

static void sleep_ms(long ms) {
    struct timespec delay = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&delay, &delay) != 0 && errno == EINTR) {
    }
}

/* MARK: removal */

/* Whether the token is pulled out. The first call to see it so closes every session on it, as
 * pulling a real token does: a session opened before is invalid even after the token is back,
 * and the login is gone. */
static int removed(struct slot_state *slot) {
    if (!slot) return 0;
    char path[PATH_MAX];
    if (control_path(slot, "replugged", path, sizeof path) && unlink(path) == 0) {
        real->C_CloseAllSessions(slot->id); /* out and back in since the last call */
        pthread_mutex_lock(&table_lock);
        slot->sessions = 0;
        pthread_mutex_unlock(&table_lock);
    }
    int now = exists(slot, "removed");
    pthread_mutex_lock(&table_lock);
    int first = now && !slot->was_removed;
    slot->was_removed = now;
    if (first) slot->sessions = 0;
    pthread_mutex_unlock(&table_lock);
    if (first) real->C_CloseAllSessions(slot->id);
    return now;
}

/* The answer for a call on `session` before it reaches SoftHSM: CKR_OK to go on. */
static CK_RV session_check(CK_SESSION_HANDLE session, struct slot_state **out) {
    struct slot_state *slot = slot_of_session(session);
    if (out) *out = slot;
    return slot && removed(slot) ? CKR_DEVICE_REMOVED : CKR_OK;
}

/* MARK: the PIN counter */

static CK_FLAGS pin_flags(const struct slot_state *slot) {
    long tries = number(slot, "max_pin_tries", 0, 10);
    CK_FLAGS flags = 0;
    if (tries > 0) {
        long failures = number(slot, "pin_failures", 0, 10);
        long left = tries - failures;
        if (left <= 0)
            flags |= CKF_USER_PIN_LOCKED;
        else if (left == 1)
            flags |= CKF_USER_PIN_FINAL_TRY;
        if (failures > 0 && left > 0) flags |= CKF_USER_PIN_COUNT_LOW;
    }
    return flags | (CK_FLAGS)number(slot, "flags", 0, 16);
}

/* MARK: the calls that differ from SoftHSM */

static CK_RV hw_GetSlotList(CK_BBOOL present, CK_SLOT_ID_PTR list_out, CK_ULONG_PTR count_out) {
    if (!present) return real->C_GetSlotList(present, list_out, count_out);
    CK_ULONG total = 0;
    CK_RV rv = real->C_GetSlotList(present, NULL, &total);
    if (rv != CKR_OK) return rv;
    CK_SLOT_ID *all = calloc(total + 1, sizeof *all);
    rv = real->C_GetSlotList(present, all, &total);
    if (rv != CKR_OK) {
        free(all);
        return rv;
    }
    CK_ULONG kept = 0;
    for (CK_ULONG i = 0; i < total; i++) {
        if (!removed(slot_for(all[i]))) all[kept++] = all[i];
    }
    if (list_out) {
        if (*count_out < kept) {
            *count_out = kept;
            free(all);
            return CKR_BUFFER_TOO_SMALL;
        }
        memcpy(list_out, all, kept * sizeof *all);
    }
    *count_out = kept;
    free(all);
    return CKR_OK;
}

static CK_RV hw_GetTokenInfo(CK_SLOT_ID id, CK_TOKEN_INFO_PTR info) {
    struct slot_state *slot = slot_for(id);
    if (slot && removed(slot)) return CKR_TOKEN_NOT_PRESENT;
    CK_RV rv = real->C_GetTokenInfo(id, info);
    if (rv != CKR_OK || !controlled(slot)) return rv;
    info->flags &= ~(CK_FLAGS)(CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_LOCKED);
    info->flags |= pin_flags(slot);
    long max = number(slot, "max_sessions", 0, 10);
    if (max > 0) {
        info->ulMaxSessionCount = info->ulMaxRwSessionCount = (CK_ULONG)max;
        pthread_mutex_lock(&table_lock);
        info->ulSessionCount = (CK_ULONG)slot->sessions;
        pthread_mutex_unlock(&table_lock);
    }
    return CKR_OK;
}

static CK_RV hw_OpenSession(CK_SLOT_ID id, CK_FLAGS flags, CK_VOID_PTR application, CK_NOTIFY notify,
                            CK_SESSION_HANDLE_PTR session) {
    struct slot_state *slot = slot_for(id);
    if (slot && removed(slot)) return CKR_TOKEN_NOT_PRESENT;
    long max = number(slot, "max_sessions", 0, 10);
    pthread_mutex_lock(&table_lock);
    if (slot && max > 0 && slot->sessions >= max) {
        pthread_mutex_unlock(&table_lock);
        return CKR_SESSION_COUNT;
    }
    if (slot) slot->sessions++;
    pthread_mutex_unlock(&table_lock);
    CK_RV rv = real->C_OpenSession(id, flags, application, notify, session);
    if (rv != CKR_OK && slot) {
        pthread_mutex_lock(&table_lock);
        slot->sessions--;
        pthread_mutex_unlock(&table_lock);
    }
    return rv;
}

static void forget_session(struct slot_state *slot) {
    if (!slot) return;
    pthread_mutex_lock(&table_lock);
    if (slot->sessions > 0) slot->sessions--;
    pthread_mutex_unlock(&table_lock);
}

static CK_RV hw_CloseSession(CK_SESSION_HANDLE session) {
    struct slot_state *slot = slot_of_session(session);
    CK_RV rv = real->C_CloseSession(session);
    if (rv == CKR_OK) forget_session(slot);
    return rv;
}

static CK_RV hw_CloseAllSessions(CK_SLOT_ID id) {
    struct slot_state *slot = slot_for(id);
    CK_RV rv = real->C_CloseAllSessions(id);
    if (rv == CKR_OK && slot) {
        pthread_mutex_lock(&table_lock);
        slot->sessions = 0;
        pthread_mutex_unlock(&table_lock);
    }
    return rv;
}

static CK_RV hw_Login(CK_SESSION_HANDLE session, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, CK_ULONG length) {
    struct slot_state *slot = NULL;
    CK_RV rv = session_check(session, &slot);
    if (rv != CKR_OK || user != CKU_USER || !controlled(slot)) {
        return rv != CKR_OK ? rv : real->C_Login(session, user, pin, length);
    }
    count(slot, "login_calls");
    if (exists(slot, "vanish_in_login")) {
        char path[PATH_MAX];
        control_path(slot, "vanish_in_login", path, sizeof path);
        unlink(path);
        control_path(slot, "removed", path, sizeof path);
        close(open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
        return CKR_DEVICE_REMOVED;
    }
    int fd = lock_file(slot, "device.lock");
    if (pin_flags(slot) & CKF_USER_PIN_LOCKED) {
        unlock_file(fd);
        return CKR_PIN_LOCKED;
    }
    rv = real->C_Login(session, user, pin, length);
    if (rv == CKR_PIN_INCORRECT) {
        count(slot, "wrong_logins");
        set_number(slot, "pin_failures", number(slot, "pin_failures", 0, 10) + 1);
        if (pin_flags(slot) & CKF_USER_PIN_LOCKED) rv = CKR_PIN_LOCKED;
    } else if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN) {
        set_number(slot, "pin_failures", 0);
    }
    unlock_file(fd);
    return rv;
}

static CK_RV hw_SignInit(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism, CK_OBJECT_HANDLE key) {
    CK_RV rv = session_check(session, NULL);
    return rv != CKR_OK ? rv : real->C_SignInit(session, mechanism, key);
}

static CK_RV hw_Sign(CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG length, CK_BYTE_PTR signature,
                     CK_ULONG_PTR signature_length) {
    struct slot_state *slot = NULL;
    CK_RV rv = session_check(session, &slot);
    if (rv != CKR_OK || !controlled(slot)) {
        return rv != CKR_OK ? rv : real->C_Sign(session, data, length, signature, signature_length);
    }
    /* A length query does not touch the device. */
    if (!signature) return real->C_Sign(session, data, length, signature, signature_length);
    int fd = lock_file(slot, "device.lock");
    long latency = number(slot, "latency_ms", 0, 10);
    if (latency > 0) sleep_ms(latency);
    while (exists(slot, "hang") && !removed(slot)) sleep_ms(10);
    if (removed(slot)) {
        unlock_file(fd);
        return CKR_DEVICE_REMOVED; /* pulled out while signing */
    }
    rv = real->C_Sign(session, data, length, signature, signature_length);
    unlock_file(fd);
    if (rv == CKR_OK) count(slot, "signs");
    return rv;
}

/* Calls that only need to notice a pulled-out token. */
#define CHECKED(name, params, args)                      \
    static CK_RV hw_##name params {                      \
        CK_RV rv = session_check(session, NULL);         \
        return rv != CKR_OK ? rv : real->C_##name args;  \
    }

CHECKED(FindObjectsInit, (CK_SESSION_HANDLE session, CK_ATTRIBUTE_PTR template, CK_ULONG count),
        (session, template, count))
CHECKED(FindObjects, (CK_SESSION_HANDLE session, CK_OBJECT_HANDLE_PTR objects, CK_ULONG max, CK_ULONG_PTR found),
        (session, objects, max, found))
CHECKED(GetAttributeValue,
        (CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object, CK_ATTRIBUTE_PTR template, CK_ULONG count),
        (session, object, template, count))
CHECKED(DigestInit, (CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism), (session, mechanism))
CHECKED(Digest, (CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG length, CK_BYTE_PTR digest,
                 CK_ULONG_PTR digest_length),
        (session, data, length, digest, digest_length))

/* MARK: loading */

static CK_RV hw_Initialize(CK_VOID_PTR args) {
    CK_RV rv = real->C_Initialize(args);
    if (rv == CKR_OK) {
        pthread_mutex_lock(&table_lock);
        slot_count = 0; /* a restarted module has no sessions; slot ids may change */
        pthread_mutex_unlock(&table_lock);
    }
    return rv;
}

EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out) {
    if (!out) return CKR_ARGUMENTS_BAD;
    if (!real) {
        char beside[PATH_MAX];
        const char *path = getenv("HWTOKEN_MODULE");
        if (!path || !*path) {
            snprintf(beside, sizeof beside, "%s.real", own_path());
            path = beside;
        }
        void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!handle) return CKR_GENERAL_ERROR;
        CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(handle, "C_GetFunctionList");
        if (!get || get(&real) != CKR_OK) return CKR_GENERAL_ERROR;
        list = *real;
        list.C_Initialize = hw_Initialize;
        list.C_GetSlotList = hw_GetSlotList;
        list.C_GetTokenInfo = hw_GetTokenInfo;
        list.C_OpenSession = hw_OpenSession;
        list.C_CloseSession = hw_CloseSession;
        list.C_CloseAllSessions = hw_CloseAllSessions;
        list.C_Login = hw_Login;
        list.C_SignInit = hw_SignInit;
        list.C_Sign = hw_Sign;
        list.C_FindObjectsInit = hw_FindObjectsInit;
        list.C_FindObjects = hw_FindObjects;
        list.C_GetAttributeValue = hw_GetAttributeValue;
        list.C_DigestInit = hw_DigestInit;
        list.C_Digest = hw_Digest;
        list.C_GetFunctionList = C_GetFunctionList;
    }
    *out = &list;
    return CKR_OK;
}
