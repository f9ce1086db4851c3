#ifndef SMIME_MILTER_CSHIMS_H
#define SMIME_MILTER_CSHIMS_H

/// Parks libmilter's own signal thread from now on (see signals.c), so that the daemon's
/// signal thread alone receives SIGHUP, SIGTERM and SIGINT.
void smime_milter_take_signals(void);

#endif
