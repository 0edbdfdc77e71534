// Tensor handles shared by the addon's translation units.
#pragma once

#include <napi.h>
#include <ATen/ATen.h>

namespace vt {

// Every handle given to JavaScript owns one at::Tensor. dispose() releases the
// tensor at once; the External's finalizer is only the safety net.
struct Handle {
  at::Tensor tensor;
  int64_t reportedBytes = 0;
};

Napi::Value wrap(Napi::Env env, at::Tensor tensor);
at::Tensor& unwrap(const Napi::Value& value, const char* what);
bool isHandle(const Napi::Value& value);
int64_t liveHandles();
void release(Napi::Env env, Handle* handle);

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

}  // namespace vt
