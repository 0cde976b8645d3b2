/* The program version; the build defines PLATEAU_VERSION from the CMake project version. */
#ifndef PLATEAU_BASE_VERSION_H
#define PLATEAU_BASE_VERSION_H
#ifndef PLATEAU_VERSION
#define PLATEAU_VERSION "0.1.0"
#endif
#endif
