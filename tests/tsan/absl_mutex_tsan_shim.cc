// TSan-only test shim, linked into a -fsanitize=thread build of meshmqd:
//   g++ -c -O1 -g -fPIC -fsanitize=thread tests/tsan/absl_mutex_tsan_shim.cc -o /tmp/shim.o
//   cmake -S . -B /tmp/build-tsan -G Ninja -DCMAKE_CXX_FLAGS='-fsanitize=thread -O1 -g' \
//     -DCMAKE_EXE_LINKER_FLAGS='-fsanitize=thread /tmp/shim.o -ldl'
//   cd tests/integration && TSAN_OPTIONS=suppressions=$PWD/../tsan/suppressions.txt \
//     MESHMQD=/tmp/build-tsan/node/meshmqd setarch -R python3 -m unittest ...
// (setarch -R: TSan on this kernel needs ASLR off.) The harness fails a test on any report.
// Debian's libabsl_synchronization is built without -fsanitize=thread, so TSan cannot see
// absl::Mutex's happens-before edges and reports every access guarded by it. This interposes
// the lock calls meshmqd and libgrpc use (Lock/Unlock, Reader*, TryLock, LockWhen, Await,
// CondVar::Wait/WaitWithDeadline) and tells TSan about them with its rwlock annotations, as
// Abseil does in a TSan build of mutex.cc. The *WithTimeout variants are not wrapped: Abseil
// tail-calls the *WithDeadline ones through the PLT.
//
// gRPC itself is not instrumented either: suppressions.txt hides races inside it. With the
// cluster links up a few gRPC-internal reports remain, so a TSan run of test_cluster reports
// them; the single-node suites run clean.
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include "absl/time/time.h"

namespace {
template <typename F>
F Real(const char* name) { return reinterpret_cast<F>(dlsym(RTLD_NEXT, name)); }
using Fn = void (*)(void*);
// Unlock seen by TSan, then "lock pending" (TSan ignores this thread's accesses and syncs until
// post_lock), so what Abseil does while it waits and re-takes the lock is invisible to TSan.
inline void WaitBegin(void* mu) {
  __tsan_mutex_pre_unlock(mu, 0);
  __tsan_mutex_post_unlock(mu, 0);
  __tsan_mutex_pre_lock(mu, 0);
}
inline void WaitEnd(void* mu) { __tsan_mutex_post_lock(mu, 0, 0); }
}  // namespace

extern "C" {
// ---- as in the repo shim
void _ZN4absl7debian35Mutex4LockEv(void* mu) {
  static Fn real = Real<Fn>("_ZN4absl7debian35Mutex4LockEv");
  __tsan_mutex_pre_lock(mu, 0);
  real(mu);
  __tsan_mutex_post_lock(mu, 0, 0);
}
void _ZN4absl7debian35Mutex6UnlockEv(void* mu) {
  static Fn real = Real<Fn>("_ZN4absl7debian35Mutex6UnlockEv");
  __tsan_mutex_pre_unlock(mu, 0);
  real(mu);
  __tsan_mutex_post_unlock(mu, 0);
}
void _ZN4absl7debian35Mutex10ReaderLockEv(void* mu) {
  static Fn real = Real<Fn>("_ZN4absl7debian35Mutex10ReaderLockEv");
  __tsan_mutex_pre_lock(mu, __tsan_mutex_read_lock);
  real(mu);
  __tsan_mutex_post_lock(mu, __tsan_mutex_read_lock, 0);
}
void _ZN4absl7debian35Mutex12ReaderUnlockEv(void* mu) {
  static Fn real = Real<Fn>("_ZN4absl7debian35Mutex12ReaderUnlockEv");
  __tsan_mutex_pre_unlock(mu, __tsan_mutex_read_lock);
  real(mu);
  __tsan_mutex_post_unlock(mu, __tsan_mutex_read_lock);
}
// ---- Await: changed to ignore accesses while re-taking (the condition is evaluated there)
void _ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE(void* mu, const void* cond) {
  using F = void (*)(void*, const void*);
  static F real = Real<F>("_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE");
  WaitBegin(mu);
  real(mu, cond);
  WaitEnd(mu);
}
bool _ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE(void* mu, const void* cond,
                                                                         absl::Time t) {
  using F = bool (*)(void*, const void*, absl::Time);
  static F real = Real<F>("_ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  WaitBegin(mu);
  bool r = real(mu, cond, t);
  WaitEnd(mu);
  return r;
}
// ---- new: TryLock
bool _ZN4absl7debian35Mutex7TryLockEv(void* mu) {
  using F = bool (*)(void*);
  static F real = Real<F>("_ZN4absl7debian35Mutex7TryLockEv");
  __tsan_mutex_pre_lock(mu, __tsan_mutex_try_lock);
  bool r = real(mu);
  __tsan_mutex_post_lock(mu, __tsan_mutex_try_lock | (r ? 0 : __tsan_mutex_try_lock_failed), 0);
  return r;
}
bool _ZN4absl7debian35Mutex13ReaderTryLockEv(void* mu) {
  using F = bool (*)(void*);
  static F real = Real<F>("_ZN4absl7debian35Mutex13ReaderTryLockEv");
  unsigned f = __tsan_mutex_try_lock | __tsan_mutex_read_lock;
  __tsan_mutex_pre_lock(mu, f);
  bool r = real(mu);
  __tsan_mutex_post_lock(mu, f | (r ? 0 : __tsan_mutex_try_lock_failed), 0);
  return r;
}
// ---- new: LockWhen family (the condition is evaluated under the lock, inside Abseil)
void _ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE(void* mu, const void* cond) {
  using F = void (*)(void*, const void*);
  static F real = Real<F>("_ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE");
  __tsan_mutex_pre_lock(mu, 0);
  real(mu, cond);
  __tsan_mutex_post_lock(mu, 0, 0);
}
bool _ZN4absl7debian35Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE(void* mu, const void* cond,
                                                                            absl::Time t) {
  using F = bool (*)(void*, const void*, absl::Time);
  static F real = Real<F>("_ZN4absl7debian35Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  __tsan_mutex_pre_lock(mu, 0);
  bool r = real(mu, cond, t);
  __tsan_mutex_post_lock(mu, 0, 0);  // held either way
  return r;
}
void _ZN4absl7debian35Mutex14ReaderLockWhenERKNS0_9ConditionE(void* mu, const void* cond) {
  using F = void (*)(void*, const void*);
  static F real = Real<F>("_ZN4absl7debian35Mutex14ReaderLockWhenERKNS0_9ConditionE");
  __tsan_mutex_pre_lock(mu, __tsan_mutex_read_lock);
  real(mu, cond);
  __tsan_mutex_post_lock(mu, __tsan_mutex_read_lock, 0);
}
// (The *WithTimeout variants are not wrapped: Abseil tail-calls the *WithDeadline ones
// through the PLT, which are.)
// ---- new: CondVar waits (release the mutex while waiting, re-take it before returning)
void _ZN4absl7debian37CondVar4WaitEPNS0_5MutexE(void* cv, void* mu) {
  using F = void (*)(void*, void*);
  static F real = Real<F>("_ZN4absl7debian37CondVar4WaitEPNS0_5MutexE");
  WaitBegin(mu);
  real(cv, mu);
  WaitEnd(mu);
}
bool _ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE(void* cv, void* mu, absl::Time t) {
  using F = bool (*)(void*, void*, absl::Time);
  static F real = Real<F>("_ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  WaitBegin(mu);
  bool r = real(cv, mu, t);
  WaitEnd(mu);
  return r;
}
}
