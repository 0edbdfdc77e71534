// Dropout masks. ATen's CPU dropout draws its mask with bernoulli_, which without
// MKL is a serial loop over one generator: 8% of the reference's training step
// here (437 ms of 5.4 s at batch 8). This draws one 64-bit seed from libtorch's
// default CPU generator per mask (so manualSeed and the saved generator state
// reproduce it) and derives element i's uniform from a counter-based hash of
// (seed, i), in parallel; the mask does not depend on the thread count. The
// masks differ from PyTorch's draws, which no implementation reproduces anyway
// (the parity fixtures run in eval mode for that reason).
#include "handle.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <mutex>

namespace vt {
namespace {

// splitmix64's finaliser: a bijective mix of a 64-bit counter.
inline uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t drawSeed() {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return at::check_generator<at::CPUGeneratorImpl>(generator)->random64();
}

// dropoutMask(like, p): a float32 tensor shaped like `like` whose elements are
// 1 / (1 - p) with probability 1 - p and 0 otherwise (0 < p < 1). Each 64-bit
// hash gives two elements their 24-bit uniforms.
Napi::Value dropoutMask(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    const at::Tensor& like = unwrap(info[0], "input");
    if (!info[1].IsNumber()) throw Napi::TypeError::New(env, "dropoutMask: p must be a number");
    const double p = info[1].As<Napi::Number>().DoubleValue();
    if (!(p > 0 && p < 1)) throw Napi::RangeError::New(env, "dropoutMask: p must be in (0, 1), got " + std::to_string(p));
    if (!like.device().is_cpu()) throw Napi::Error::New(env, "dropoutMask: only CPU tensors");
    at::Tensor mask = at::empty(like.sizes(), at::TensorOptions().dtype(at::kFloat));
    const uint64_t seed = drawSeed();
    // keep when u < 1 - p, u = k / 2^24 with k uniform in [0, 2^24)
    const uint32_t threshold = static_cast<uint32_t>((1.0 - p) * 16777216.0);
    const float scale = 1.0f / static_cast<float>(1.0 - p);
    float* out = mask.data_ptr<float>();
    const int64_t numel = mask.numel();
    at::parallel_for(0, (numel + 1) / 2, 16384, [&](int64_t begin, int64_t end) {
      for (int64_t pair = begin; pair < end; ++pair) {
        const uint64_t bits = mix(seed + static_cast<uint64_t>(pair) * 0x9e3779b97f4a7c15ULL);
        const float first = static_cast<uint32_t>(bits & 0xffffff) < threshold ? scale : 0.0f;
        const float second = static_cast<uint32_t>((bits >> 32) & 0xffffff) < threshold ? scale : 0.0f;
        out[2 * pair] = first;
        if (2 * pair + 1 < numel) out[2 * pair + 1] = second;
      }
    });
    return wrap(env, mask);
  });
}

}  // namespace

void initRandom(Napi::Env env, Napi::Object exports) {
  exports.Set("dropoutMask", Napi::Function::New(env, dropoutMask));
}

}  // namespace vt
