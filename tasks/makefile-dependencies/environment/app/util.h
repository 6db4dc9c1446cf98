#ifndef UTIL_H
#define UTIL_H
#define GREETING "hello"
int add(int a, int b);
#endif
