#ifndef SMIME_MILTER_CSHIMS_H
#define SMIME_MILTER_CSHIMS_H

/// Parks libmilter's own signal thread from now on (see signals.c), so that the daemon's
/// signal thread alone receives SIGHUP, SIGTERM and SIGINT.
void smime_milter_take_signals(void);

/// Allocations of `bytes` or more get pages of their own from the system (mmap), returned when
/// freed; glibc's default threshold rises up to 32 MB as large blocks are freed (see memory.c).
void smime_milter_set_mmap_threshold(int bytes);

/// Names the calling thread for the system (at most 15 characters; see threads.c).
void smime_milter_name_thread(const char *name);

#endif
