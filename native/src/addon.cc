#include "handle.h"

namespace {

Napi::Object init(Napi::Env env, Napi::Object exports) {
  vt::initTensor(env, exports);
  vt::initDispatch(env, exports);
  vt::initLmdb(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(vilbert_torch, init)
