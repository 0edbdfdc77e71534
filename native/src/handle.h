// Tensor handles shared by the addon's translation units.
#pragma once

#include <napi.h>
#include <ATen/ATen.h>

namespace vt {

// Tensors given to JavaScript live in a slot table; JavaScript holds a BigInt
// handle (generation << 32 | slot). dispose() frees the tensor and the slot at
// once, so nothing waits for the garbage collector; a stale handle (its slot
// reused or freed) is detected by the generation and refused.
Napi::Value wrap(Napi::Env env, at::Tensor tensor);
at::Tensor& unwrap(const Napi::Value& value, const char* what);
bool isHandle(const Napi::Value& value);
int64_t liveHandles();

// A JS number (an exact integer) or BigInt as int64; throws a JS TypeError /
// RangeError naming `what` otherwise.
int64_t toInt64(const Napi::Value& value, const char* what);
// A JS array of non-negative integers as a tensor shape.
std::vector<int64_t> toShape(const Napi::Value& value);

// Runs body and turns any libtorch or C++ exception into a JS Error, so that a
// bad shape or index never aborts the process.
template <typename Body>
Napi::Value guarded(const Napi::CallbackInfo& info, Body body) {
  Napi::Env env = info.Env();
  try {
    return body(env);
  } catch (const Napi::Error&) {
    throw;
  } catch (const c10::Error& error) {
    throw Napi::Error::New(env, error.what_without_backtrace());
  } catch (const std::exception& error) {
    throw Napi::Error::New(env, error.what());
  }
}

void initTensor(Napi::Env env, Napi::Object exports);
void initDispatch(Napi::Env env, Napi::Object exports);
void initLmdb(Napi::Env env, Napi::Object exports);
void initDistributed(Napi::Env env, Napi::Object exports);
void initOptim(Napi::Env env, Napi::Object exports);
void initRandom(Napi::Env env, Napi::Object exports);
void initRows(Napi::Env env, Napi::Object exports);
void initCpuAllocator(Napi::Env env, Napi::Object exports);
void initFiles(Napi::Env env, Napi::Object exports);
void initPrecision(Napi::Env env, Napi::Object exports);

// Replaces libtorch's CPU allocator for large blocks (cpu_allocator.cc), unless
// VILBERT_SYSTEM_MALLOC is set.
void installCpuAllocator();

}  // namespace vt
