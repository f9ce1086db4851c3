#ifndef SMIME_MILTER_CP11KIT_SHIM_H
#define SMIME_MILTER_CP11KIT_SHIM_H
#include <p11-kit/p11-kit.h>
#include <p11-kit/pin.h>
#include <p11-kit/uri.h>
#endif
