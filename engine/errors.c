/*
 * engine/errors.c — names for the ENG_* codes. A switch over the enum rather
 * than an indexed table because the codes are negative and sparse-safe; every
 * unknown code maps to one fixed string, so the result is never NULL.
 */
#include "engine/types.h"

const char *eng_strerror(int code)
{
    switch (code) {
    case ENG_OK: return "ok";
    case ENG_ENOMEM: return "out of memory";
    case ENG_EINVAL: return "invalid argument";
    case ENG_ESHAPE: return "sizes do not fit together";
    case ENG_ENONFINITE: return "a loss or gradient became NaN or Inf";
    default: return "unknown engine error";
    }
}
