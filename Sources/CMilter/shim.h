#ifndef SMIME_MILTER_CMILTER_SHIM_H
#define SMIME_MILTER_CMILTER_SHIM_H
#include <libmilter/mfapi.h>
#endif
