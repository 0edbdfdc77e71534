#include "handle.h"

#include <malloc.h>

#include <climits>
#include <cstdlib>

namespace {

// Large tensors (> 32 MB) would each get a fresh mmap from glibc and be
// unmapped again when freed, so every forward pass pays page faults and page
// zeroing for its activations. Serving them from the heap and keeping freed
// memory for reuse (as PyTorch's caching allocators do on GPU) avoids that:
// measured 6-10% on a BERT-base layer forward here. VILBERT_SYSTEM_MALLOC=1
// keeps glibc's defaults.
void tuneAllocator() {
  if (std::getenv("VILBERT_SYSTEM_MALLOC") != nullptr) return;
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, INT_MAX);
  vt::installCpuAllocator();
}

Napi::Object init(Napi::Env env, Napi::Object exports) {
  tuneAllocator();
  vt::initTensor(env, exports);
  vt::initDispatch(env, exports);
  vt::initLmdb(env, exports);
  vt::initDistributed(env, exports);
  vt::initOptim(env, exports);
  vt::initRandom(env, exports);
  vt::initRows(env, exports);
  vt::initCpuAllocator(env, exports);
  vt::initFiles(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(vilbert_torch, init)
