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
//
// One arena for every thread created from here on: a thread other than the main one
// otherwise gets an arena of 64 MB heaps, and a block larger than that (a prefetching
// worker's batch of 128 VQA items holds a 106 MB feature array) is mmapped there whatever
// M_MMAP_MAX says and unmapped when freed, so each batch paid ~25,900 page faults afresh.
// This is only part of a fix: arenas that Node's own threads made before the addon loaded
// remain, and later threads are handed those in turn, so one worker may still get a
// thread arena. MALLOC_ARENA_MAX=1 in the environment (read when the process starts)
// fixes it for every thread. Measured on a 2-core VM, two in-process and two worker
// loaders, 16 batches of 128 each: without this, every worker 1,493-1,832 items/s; with
// it, the first worker 4,835-5,698 (2-6 faults a batch), the second still 924-1,617;
// with MALLOC_ARENA_MAX=1, both 4,923-5,347. bench/data-pipeline.ts, batches of 128 from
// the worker: 648-1,280 items/s before, 3,509-3,857 after. A VQA train step
// (bench/train-step.ts, 2 threads, 5 runs): 3.77 s median before, 3.53 s after, peak
// memory unchanged.
void tuneAllocator() {
  if (std::getenv("VILBERT_SYSTEM_MALLOC") != nullptr) return;
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, INT_MAX);
  mallopt(M_ARENA_MAX, 1);
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
  vt::initPrecision(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(vilbert_torch, init)
