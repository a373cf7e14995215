// TSan-only test shim, linked into a -fsanitize=thread build of meshmqd:
//   g++ -c -O1 -g -fPIC -fsanitize=thread tests/tsan/absl_mutex_tsan_shim.cc -o /tmp/shim.o
//   cmake -S . -B /tmp/build-tsan -G Ninja -DCMAKE_CXX_FLAGS='-fsanitize=thread -O1 -g' \
//     -DCMAKE_EXE_LINKER_FLAGS='-fsanitize=thread /tmp/shim.o -ldl'
//   cd tests/integration && TSAN_OPTIONS=suppressions=$PWD/../tsan/suppressions.txt \
//     MESHMQD=/tmp/build-tsan/node/meshmqd setarch -R python3 -m unittest ...
// (setarch -R: TSan on this kernel needs ASLR off.) The harness fails a test on any report.
// Debian's libabsl_synchronization is built without
// -fsanitize=thread, so TSan cannot see absl::Mutex's happens-before edges and reports every
// access guarded by it. Interpose the four lock calls the code under test uses and tell TSan
// about them with its rwlock annotations, exactly what Abseil does in a TSan build of mutex.cc.
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

namespace {
using Fn = void (*)(void*);
Fn Real(const char* name) { return reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name)); }
}  // namespace

extern "C" {
void _ZN4absl7debian35Mutex4LockEv(void* mu) {
  static Fn real = Real("_ZN4absl7debian35Mutex4LockEv");
  __tsan_mutex_pre_lock(mu, 0);
  real(mu);
  __tsan_mutex_post_lock(mu, 0, 0);
}
void _ZN4absl7debian35Mutex6UnlockEv(void* mu) {
  static Fn real = Real("_ZN4absl7debian35Mutex6UnlockEv");
  __tsan_mutex_pre_unlock(mu, 0);
  real(mu);
  __tsan_mutex_post_unlock(mu, 0);
}
void _ZN4absl7debian35Mutex10ReaderLockEv(void* mu) {
  static Fn real = Real("_ZN4absl7debian35Mutex10ReaderLockEv");
  __tsan_mutex_pre_lock(mu, __tsan_mutex_read_lock);
  real(mu);
  __tsan_mutex_post_lock(mu, __tsan_mutex_read_lock, 0);
}
void _ZN4absl7debian35Mutex12ReaderUnlockEv(void* mu) {
  static Fn real = Real("_ZN4absl7debian35Mutex12ReaderUnlockEv");
  __tsan_mutex_pre_unlock(mu, __tsan_mutex_read_lock);
  real(mu);
  __tsan_mutex_post_unlock(mu, __tsan_mutex_read_lock);
}
// Await releases the lock while it waits and takes it again before returning, inside Abseil
// where the interposed Lock/Unlock above do not see it: tell TSan around the whole call.
void _ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE(void* mu, const void* cond) {
  using AwaitFn = void (*)(void*, const void*);
  static AwaitFn real =
      reinterpret_cast<AwaitFn>(dlsym(RTLD_NEXT, "_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE"));
  __tsan_mutex_pre_unlock(mu, 0);
  __tsan_mutex_post_unlock(mu, 0);
  real(mu, cond);
  __tsan_mutex_pre_lock(mu, 0);
  __tsan_mutex_post_lock(mu, 0, 0);
}
}
