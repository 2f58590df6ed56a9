/* moved: what crosses rooms is in include/dptrain/ */
#include "dptrain/sampler.h"
