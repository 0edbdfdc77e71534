// The optimiser's per-step work over every parameter in one call: AdamW's update
// fused into one pass over each parameter, gradient and both moments, and
// zero_grad over a list of parameters.
//
// The reference's AdamW step is eight ATen element-wise kernels per parameter
// (mul_, add_, mul_, addcmul_, sqrt, add_, addcdiv_, add_), each a pass over
// memory, plus a fresh `denom` tensor. The fused pass reads p, g, m and v once and
// writes p, m and v once, computing each element with the operations those
// kernels use, in their order and rounding (measured on libtorch 1.13: add_ with
// alpha is fma(t, alpha, self); addcmul_ is fma(value * t1, t2, self); addcdiv_ is
// self + (value * t1) / t2, each step rounded). test/train/fused-adamw.test.ts checks it bit for bit against
// the ATen sequence. Tensors that are not contiguous float32 on the CPU, or a CPU
// without AVX2 and FMA, take the ATen sequence itself.
#include "handle.h"

#include <ATen/Parallel.h>
#include <immintrin.h>

#include <string>
#include <vector>

namespace vt {
namespace {

struct AdamWScalars {
  float beta1, oneMinusBeta1, beta2, oneMinusBeta2, eps, negStepSize, negDecay;
  bool decay;
};

__attribute__((target("avx2,fma"))) void adamwAvx2(float* __restrict p, const float* __restrict g, float* __restrict m,
                                                    float* __restrict v, int64_t begin, int64_t end,
                                                    const AdamWScalars& s) {
  const __m256 beta1 = _mm256_set1_ps(s.beta1), oneMinusBeta1 = _mm256_set1_ps(s.oneMinusBeta1);
  const __m256 beta2 = _mm256_set1_ps(s.beta2), oneMinusBeta2 = _mm256_set1_ps(s.oneMinusBeta2);
  const __m256 eps = _mm256_set1_ps(s.eps), negStepSize = _mm256_set1_ps(s.negStepSize);
  const __m256 negDecay = _mm256_set1_ps(s.negDecay);
  int64_t i = begin;
  for (; i + 8 <= end; i += 8) {
    __m256 grad = _mm256_loadu_ps(g + i);
    // exp_avg.mul_(beta1).add_(grad, alpha=1-beta1): a product, then fmadd(grad, alpha, m)
    __m256 expAvg = _mm256_fmadd_ps(grad, oneMinusBeta1, _mm256_mul_ps(_mm256_loadu_ps(m + i), beta1));
    // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1-beta2): fmadd(value * g, g, v)
    __m256 expAvgSq = _mm256_fmadd_ps(_mm256_mul_ps(oneMinusBeta2, grad), grad, _mm256_mul_ps(_mm256_loadu_ps(v + i), beta2));
    // denom = exp_avg_sq.sqrt().add_(eps); p.addcdiv_(exp_avg, denom, value=-step_size): p + (value * m) / denom
    __m256 denom = _mm256_add_ps(_mm256_sqrt_ps(expAvgSq), eps);
    __m256 param = _mm256_add_ps(_mm256_loadu_ps(p + i), _mm256_div_ps(_mm256_mul_ps(negStepSize, expAvg), denom));
    // p.add_(p, alpha=-lr*wd): fmadd(p, alpha, p)
    if (s.decay) param = _mm256_fmadd_ps(param, negDecay, param);
    _mm256_storeu_ps(m + i, expAvg);
    _mm256_storeu_ps(v + i, expAvgSq);
    _mm256_storeu_ps(p + i, param);
  }
  for (; i < end; ++i) {
    __m128 grad = _mm_set_ss(g[i]);
    __m128 expAvg = _mm_fmadd_ss(grad, _mm_set_ss(s.oneMinusBeta1), _mm_mul_ss(_mm_set_ss(m[i]), _mm_set_ss(s.beta1)));
    __m128 expAvgSq = _mm_fmadd_ss(_mm_mul_ss(_mm_set_ss(s.oneMinusBeta2), grad), grad, _mm_mul_ss(_mm_set_ss(v[i]), _mm_set_ss(s.beta2)));
    __m128 denom = _mm_add_ss(_mm_sqrt_ss(expAvgSq), _mm_set_ss(s.eps));
    __m128 param = _mm_add_ss(_mm_set_ss(p[i]), _mm_div_ss(_mm_mul_ss(_mm_set_ss(s.negStepSize), expAvg), denom));
    if (s.decay) param = _mm_fmadd_ss(param, _mm_set_ss(s.negDecay), param);
    m[i] = _mm_cvtss_f32(expAvg);
    v[i] = _mm_cvtss_f32(expAvgSq);
    p[i] = _mm_cvtss_f32(param);
  }
}

bool cpuHasAvx2Fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}

bool fusable(const at::Tensor& p, const at::Tensor& g, const at::Tensor& m, const at::Tensor& v) {
  for (const at::Tensor* t : {&p, &g, &m, &v}) {
    if (t->scalar_type() != at::kFloat || !t->device().is_cpu() || !t->is_contiguous() || t->is_inference()) return false;
  }
  return g.numel() == p.numel() && m.numel() == p.numel() && v.numel() == p.numel();
}

// The ATen sequence of the reference's AdamW.step() for one parameter.
void adamwAten(at::Tensor& p, const at::Tensor& g, at::Tensor& m, at::Tensor& v, double beta1, double beta2, double eps,
               double stepSize, double decay) {
  at::NoGradGuard noGrad;
  m.mul_(beta1).add_(g, 1.0 - beta1);
  v.mul_(beta2).addcmul_(g, g, 1.0 - beta2);
  at::Tensor denom = v.sqrt().add_(eps);
  p.addcdiv_(m, denom, -stepSize);
  if (decay > 0) p.add_(p, -decay);
}

std::vector<at::Tensor*> tensorList(const Napi::Value& value, const char* what) {
  if (!value.IsArray()) throw Napi::TypeError::New(value.Env(), std::string(what) + " must be an array of tensors");
  auto array = value.As<Napi::Array>();
  std::vector<at::Tensor*> tensors(array.Length());
  for (uint32_t i = 0; i < array.Length(); ++i) tensors[i] = &unwrap(array.Get(i), what);
  return tensors;
}

const double* float64s(const Napi::Value& value, size_t length, const char* what) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
      value.As<Napi::Float64Array>().ElementLength() != length) {
    throw Napi::TypeError::New(value.Env(), std::string(what) + " must be a Float64Array of " + std::to_string(length));
  }
  return value.As<Napi::Float64Array>().Data();
}

double numberOf(const Napi::Value& value, const char* what) {
  if (!value.IsNumber()) throw Napi::TypeError::New(value.Env(), std::string(what) + " must be a number");
  return value.As<Napi::Number>().DoubleValue();
}

// gradsDefined(params): 1 where the parameter has a gradient.
Napi::Value gradsDefined(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    auto params = tensorList(info[0], "parameters");
    auto result = Napi::Uint8Array::New(env, params.size());
    for (size_t i = 0; i < params.size(); ++i) result[i] = params[i]->grad().defined() ? 1 : 0;
    return result;
  });
}

// adamwStep(params, expAvgs, expAvgSqs, stepSizes, decays, beta1, beta2, eps, fused):
// per parameter i, the update with step size stepSizes[i] and decoupled decay
// decays[i] (= lr * weight_decay; 0 skips it). Every parameter must have a
// gradient. fused false runs the ATen sequence for all of them.
Napi::Value adamwStep(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    auto params = tensorList(info[0], "parameters");
    auto expAvgs = tensorList(info[1], "exp_avg");
    auto expAvgSqs = tensorList(info[2], "exp_avg_sq");
    const size_t count = params.size();
    if (expAvgs.size() != count || expAvgSqs.size() != count)
      throw Napi::RangeError::New(env, "adamwStep: parameters and moments differ in number");
    const double* stepSizes = float64s(info[3], count, "stepSizes");
    const double* decays = float64s(info[4], count, "decays");
    const double beta1 = numberOf(info[5], "beta1"), beta2 = numberOf(info[6], "beta2"), eps = numberOf(info[7], "eps");
    const bool allowFused = info[8].ToBoolean().Value() && cpuHasAvx2Fma();
    for (size_t i = 0; i < count; ++i) {
      at::Tensor& p = *params[i];
      const at::Tensor& g = p.grad();
      if (!g.defined()) throw Napi::Error::New(env, "adamwStep: parameter " + std::to_string(i) + " has no gradient");
      at::Tensor& m = *expAvgs[i];
      at::Tensor& v = *expAvgSqs[i];
      if (!allowFused || !fusable(p, g, m, v)) {
        adamwAten(p, g, m, v, beta1, beta2, eps, stepSizes[i], decays[i]);
        continue;
      }
      // The scalars as ATen's kernels see them: each Python float rounded to float32.
      AdamWScalars s{static_cast<float>(beta1),     static_cast<float>(1.0 - beta1),
                     static_cast<float>(beta2),     static_cast<float>(1.0 - beta2),
                     static_cast<float>(eps),       static_cast<float>(-stepSizes[i]),
                     static_cast<float>(-decays[i]), decays[i] > 0};
      float* pData = p.data_ptr<float>();
      const float* gData = g.data_ptr<float>();
      float* mData = m.data_ptr<float>();
      float* vData = v.data_ptr<float>();
      at::parallel_for(0, p.numel(), 32768, [&](int64_t begin, int64_t end) {
        adamwAvx2(pData, gData, mData, vData, begin, end, s);
      });
      // In-place writes, as the ATen ops would record them for autograd's checks.
      for (at::Tensor* t : {&p, &m, &v}) t->unsafeGetTensorImpl()->bump_version();
    }
    return env.Undefined();
  });
}

// zeroGrads(params, setToNone): zero_() (or drop) every defined gradient; returns how many.
Napi::Value zeroGrads(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    auto params = tensorList(info[0], "parameters");
    const bool setToNone = info[1].ToBoolean().Value();
    at::NoGradGuard noGrad;
    int64_t zeroed = 0;
    for (at::Tensor* p : params) {
      at::Tensor& g = p->mutable_grad();
      if (!g.defined()) continue;
      if (setToNone) g.reset();
      else g.zero_();
      ++zeroed;
    }
    return Napi::Number::New(env, static_cast<double>(zeroed));
  });
}

}  // namespace

void initOptim(Napi::Env env, Napi::Object exports) {
  exports.Set("gradsDefined", Napi::Function::New(env, gradsDefined));
  exports.Set("adamwStep", Napi::Function::New(env, adamwStep));
  exports.Set("zeroGrads", Napi::Function::New(env, zeroGrads));
}

}  // namespace vt
