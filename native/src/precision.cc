// Lower precision on the CPU: libtorch's autocast (bfloat16 matrix products, as
// torch.autocast('cpu') runs them) and the quantized engine that the dynamically
// quantized int8 Linear layers use.
#include "handle.h"

#include <ATen/autocast_mode.h>
#include <ATen/Context.h>
#include <c10/core/QEngine.h>

#include <string>

namespace vt {
namespace {

// autocastEnter(dtypeCode): turns CPU autocast on with that lower-precision dtype for
// the calls that follow on this thread; returns [wasEnabled, previousDtypeCode] for
// autocastExit. Regions nest as torch.autocast's do.
Napi::Value autocastEnter(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    const auto dtype = static_cast<at::ScalarType>(toInt64(info[0], "dtype"));
    if (dtype != at::kBFloat16) throw Napi::TypeError::New(env, "CPU autocast supports bfloat16 only");
    auto previous = Napi::Array::New(env, 2);
    previous.Set(0u, Napi::Boolean::New(env, at::autocast::is_cpu_enabled()));
    previous.Set(1u, Napi::Number::New(env, static_cast<double>(at::autocast::get_autocast_cpu_dtype())));
    at::autocast::set_cpu_enabled(true);
    at::autocast::set_autocast_cpu_dtype(dtype);
    at::autocast::increment_nesting();
    return previous;
  });
}

// autocastExit(wasEnabled, previousDtypeCode): restores the state autocastEnter returned.
// Leaving the outermost region frees the bfloat16 copies of the weights it cached.
Napi::Value autocastExit(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    const bool wasEnabled = info[0].As<Napi::Boolean>().Value();
    const auto dtype = static_cast<at::ScalarType>(toInt64(info[1], "dtype"));
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_cpu_enabled(wasEnabled);
    at::autocast::set_autocast_cpu_dtype(dtype);
    return env.Undefined();
  });
}

Napi::Value isAutocastEnabled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), at::autocast::is_cpu_enabled());
}

const char* engineName(at::QEngine engine) {
  switch (engine) {
    case at::QEngine::NoQEngine:
      return "none";
    case at::QEngine::FBGEMM:
      return "fbgemm";
    case at::QEngine::QNNPACK:
      return "qnnpack";
    case at::QEngine::ONEDNN:
      return "onednn";
    default:
      return "unknown";
  }
}

// quantizedEngines(): the engines this libtorch was built with; quantizedEngine(): the one in use.
Napi::Value quantizedEngines(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    const auto& engines = at::Context::supportedQEngines();
    auto result = Napi::Array::New(env, engines.size());
    for (size_t i = 0; i < engines.size(); ++i) result.Set(static_cast<uint32_t>(i), engineName(engines[i]));
    return result;
  });
}

Napi::Value quantizedEngine(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    return Napi::String::New(env, engineName(at::globalContext().qEngine()));
  });
}

// setQuantizedEngine(name): one of quantizedEngines(); anything else is refused.
Napi::Value setQuantizedEngine(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    const std::string name = info[0].As<Napi::String>().Utf8Value();
    for (at::QEngine engine : at::Context::supportedQEngines()) {
      if (name == engineName(engine)) {
        at::globalContext().setQEngine(engine);
        return env.Undefined();
      }
    }
    throw Napi::Error::New(env, "libtorch has no quantized engine '" + name + "'");
  });
}

// hasMkldnn(): whether this libtorch has oneDNN, which runs the bfloat16 and int8 products.
Napi::Value hasMkldnn(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), at::hasMKLDNN());
}

}  // namespace

void initPrecision(Napi::Env env, Napi::Object exports) {
  exports.Set("autocastEnter", Napi::Function::New(env, autocastEnter));
  exports.Set("autocastExit", Napi::Function::New(env, autocastExit));
  exports.Set("isAutocastEnabled", Napi::Function::New(env, isAutocastEnabled));
  exports.Set("quantizedEngines", Napi::Function::New(env, quantizedEngines));
  exports.Set("quantizedEngine", Napi::Function::New(env, quantizedEngine));
  exports.Set("setQuantizedEngine", Napi::Function::New(env, setQuantizedEngine));
  exports.Set("hasMkldnn", Napi::Function::New(env, hasMkldnn));
}

}  // namespace vt
