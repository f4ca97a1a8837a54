#include "ferry_version.h"

// scripts/build-ferry writes ferry_version_stamp.h (ignored by git) only when the version
// changes, so a new commit recompiles this file alone.
#if __has_include("ferry_version_stamp.h")
#include "ferry_version_stamp.h"
#endif

#ifndef FERRY_VERSION
#define FERRY_VERSION "unstamped"
#endif

const char *ferry_build_version(void) { return FERRY_VERSION; }
