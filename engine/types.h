/*
 * engine/types.h — the scalar type and error codes shared by the engine.
 *
 * The engine is compiled twice: as `engine` with eng_real = float (what the
 * daemon trains with, F32 checkpoints) and as `engine_f64` with ENG_DOUBLE
 * defined (eng_real = double), which the gradient checks use so that central
 * finite differences are accurate to ~1e-7 relative.
 *
 * Every fallible engine function returns int: ENG_OK (0) or a negative code.
 * The engine never prints, never exits and keeps no global state.
 */
#ifndef ENG_TYPES_H
#define ENG_TYPES_H

#include <stddef.h>
#include <stdint.h>

#ifdef ENG_DOUBLE
typedef double eng_real;
#else
typedef float eng_real;
#endif

enum {
    ENG_OK = 0,
    ENG_ENOMEM = -1,     /* allocation failed */
    ENG_EINVAL = -2,     /* an argument is out of range */
    ENG_ESHAPE = -3,     /* sizes do not fit together */
    ENG_ENONFINITE = -4, /* a loss or gradient became NaN or Inf */
};

/* A static string naming the code; never NULL. */
const char *eng_strerror(int code);

#endif
