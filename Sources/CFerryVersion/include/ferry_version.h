#ifndef FERRY_VERSION_H
#define FERRY_VERSION_H

/// Ferry's version as scripts/build-ferry stamped it at build time (from VERSION and the git
/// commit), or VERSION's text with "+unstamped" for a build that did not go through it.
const char *ferry_build_version(void);

#endif
