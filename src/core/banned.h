/*
 * banned.h - C library calls herald does not use, made compile errors.
 *
 * Included last by core/common.h (after the system headers that declare
 * these), so every file of herald gets it. A banned call fails to compile
 * with "sorry_<name>_is_a_banned_function". Use instead:
 *
 *   strcpy strcat strncpy strncat   snprintf / xasprintf / memcpy with a known length
 *   sprintf vsprintf                snprintf / vsnprintf / xasprintf
 *   gets                            fgets
 *   strtok                          strtok_r / strsep (strtok keeps hidden state)
 *   atoi atol atoll                 strtol / strtoll with end and errno checks
 *   system popen                    posix_spawn / fork+exec, no shell
 *   asctime ctime gmtime localtime  the _r variants (the plain ones share a buffer)
 *   tmpnam mktemp                   mkstemp / mkdtemp
 *
 * Tests and (until it stops shelling out) src/bench build with
 * HERALD_ALLOW_BANNED; see CMakeLists.txt.
 */
#ifndef HERALD_BANNED_H
#define HERALD_BANNED_H

#define BANNED(func) sorry_##func##_is_a_banned_function

#undef strcpy
#define strcpy(x, y) BANNED(strcpy)
#undef strcat
#define strcat(x, y) BANNED(strcat)
#undef strncpy
#define strncpy(x, y, n) BANNED(strncpy)
#undef strncat
#define strncat(x, y, n) BANNED(strncat)

#undef sprintf
#define sprintf(...) BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) BANNED(vsprintf)

#undef gets
#define gets(x) BANNED(gets)
#undef strtok
#define strtok(x, y) BANNED(strtok)

#undef atoi
#define atoi(x) BANNED(atoi)
#undef atol
#define atol(x) BANNED(atol)
#undef atoll
#define atoll(x) BANNED(atoll)

#undef system
#define system(x) BANNED(system)
#undef popen
#define popen(x, y) BANNED(popen)

#undef asctime
#define asctime(t) BANNED(asctime)
#undef ctime
#define ctime(t) BANNED(ctime)
#undef gmtime
#define gmtime(t) BANNED(gmtime)
#undef localtime
#define localtime(t) BANNED(localtime)

#undef tmpnam
#define tmpnam(x) BANNED(tmpnam)
#undef mktemp
#define mktemp(x) BANNED(mktemp)

#endif
