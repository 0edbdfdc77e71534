// Tensor handles, creation and copy-out, autograd entry points, grad and
// inference modes, random generator state and thread settings.
#include "handle.h"

#include <ATen/Parallel.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>
#include <torch/version.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

namespace vt {
namespace {

struct Slot {
  at::Tensor tensor;
  uint32_t generation = 1;
  int64_t reportedBytes = 0;
};

std::vector<Slot> gSlots;
std::vector<uint32_t> gFreeSlots;
int64_t gLive = 0;

Slot* slotOf(const Napi::Value& value) {
  if (!value.IsBigInt()) return nullptr;
  bool lossless = true;
  uint64_t handle = value.As<Napi::BigInt>().Uint64Value(&lossless);
  uint64_t index = handle & 0xffffffffULL;
  uint64_t generation = handle >> 32;
  if (!lossless || index >= gSlots.size() || gSlots[index].generation != generation) return nullptr;
  return &gSlots[index];
}

bool isStale(const Napi::Value& value) {
  if (!value.IsBigInt()) return false;
  bool lossless = true;
  uint64_t handle = value.As<Napi::BigInt>().Uint64Value(&lossless);
  uint64_t index = handle & 0xffffffffULL;
  return lossless && index < gSlots.size() && (handle >> 32) != 0 && (handle >> 32) < gSlots[index].generation;
}

// Frees a slot's tensor; the generation moves on so old handles stay invalid.
void release(Napi::Env env, Slot& slot, uint32_t index) {
  if (!slot.tensor.defined()) return;
  slot.tensor.reset();
  Napi::MemoryManagement::AdjustExternalMemory(env, -slot.reportedBytes);
  slot.reportedBytes = 0;
  slot.generation += 1;
  gFreeSlots.push_back(index);
  --gLive;
}
std::vector<std::unique_ptr<c10::InferenceMode>> gInferenceModes;



Napi::Value fromBuffer(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    if (!info[0].IsTypedArray()) throw Napi::TypeError::New(env, "fromBuffer expects a TypedArray");
    auto typed = info[0].As<Napi::TypedArray>();
    auto shape = toShape(info[1]);
    auto dtype = static_cast<at::ScalarType>(toInt64(info[2], "dtype"));
    at::Tensor tensor = at::empty(shape, at::TensorOptions().dtype(dtype));
    size_t expected = tensor.nbytes();
    if (typed.ByteLength() != expected) {
      throw Napi::RangeError::New(env, "buffer holds " + std::to_string(typed.ByteLength()) +
                                           " bytes but shape and dtype need " + std::to_string(expected));
    }
    auto* bytes = static_cast<uint8_t*>(typed.ArrayBuffer().Data()) + typed.ByteOffset();
    if (expected > 0) std::memcpy(tensor.data_ptr(), bytes, expected);
    return wrap(env, tensor);
  });
}

Napi::Value toBuffer(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    at::Tensor source = unwrap(info[0], "tensor").detach().cpu().contiguous();
    auto buffer = Napi::ArrayBuffer::New(env, source.nbytes());
    if (source.nbytes() > 0) std::memcpy(buffer.Data(), source.data_ptr(), source.nbytes());
    return buffer;
  });
}

// Disposing twice, or a handle whose slot was already freed, is a no-op.
Napi::Value dispose(const Napi::CallbackInfo& info) {
  Slot* slot = slotOf(info[0]);
  if (slot == nullptr) {
    if (isStale(info[0])) return info.Env().Undefined();
    throw Napi::TypeError::New(info.Env(), "dispose expects a tensor handle");
  }
  release(info.Env(), *slot, static_cast<uint32_t>(slot - gSlots.data()));
  return info.Env().Undefined();
}

Napi::Value isDisposed(const Napi::CallbackInfo& info) {
  if (slotOf(info[0]) != nullptr) return Napi::Boolean::New(info.Env(), false);
  if (isStale(info[0])) return Napi::Boolean::New(info.Env(), true);
  throw Napi::TypeError::New(info.Env(), "isDisposed expects a tensor handle");
}

Napi::Value shape(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    auto sizes = unwrap(info[0], "tensor").sizes();
    auto array = Napi::Array::New(env, sizes.size());
    for (size_t i = 0; i < sizes.size(); ++i) array.Set(i, Napi::Number::New(env, static_cast<double>(sizes[i])));
    return array;
  });
}

Napi::Value dtype(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    return Napi::Number::New(env, static_cast<int>(unwrap(info[0], "tensor").scalar_type()));
  });
}

Napi::Value device(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    return Napi::String::New(env, unwrap(info[0], "tensor").device().str());
  });
}

Napi::Value item(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    at::Tensor& tensor = unwrap(info[0], "tensor");
    if (tensor.numel() != 1)
      throw Napi::RangeError::New(env, "item() needs a tensor with one element, got " + std::to_string(tensor.numel()));
    at::Scalar value = tensor.item();
    if (value.isBoolean()) return Napi::Boolean::New(env, value.toBool());
    if (value.isIntegral(false)) return Napi::Number::New(env, static_cast<double>(value.toLong()));
    return Napi::Number::New(env, value.toDouble());
  });
}

Napi::Value requiresGrad(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    return Napi::Boolean::New(env, unwrap(info[0], "tensor").requires_grad());
  });
}

// version(tensor): its in-place version counter (Tensor._version), bumped by every in-place
// write; 0 for an inference tensor, which has none.
Napi::Value version(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    const at::Tensor& tensor = unwrap(info[0], "tensor");
    return Napi::Number::New(env, tensor.is_inference() ? 0.0 : static_cast<double>(tensor._version()));
  });
}

Napi::Value setRequiresGrad(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    unwrap(info[0], "tensor").requires_grad_(info[1].ToBoolean().Value());
    return env.Undefined();
  });
}

Napi::Value hasGradFn(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    return Napi::Boolean::New(env, unwrap(info[0], "tensor").grad_fn() != nullptr);
  });
}

Napi::Value isInference(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    return Napi::Boolean::New(env, unwrap(info[0], "tensor").is_inference());
  });
}

Napi::Value grad(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    const at::Tensor& gradient = unwrap(info[0], "tensor").grad();
    if (!gradient.defined()) return env.Null();
    return wrap(env, gradient);
  });
}

Napi::Value setGrad(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    at::Tensor& tensor = unwrap(info[0], "tensor");
    if (info[1].IsNull() || info[1].IsUndefined()) {
      tensor.mutable_grad().reset();
    } else {
      tensor.mutable_grad() = unwrap(info[1], "gradient");
    }
    return env.Undefined();
  });
}

Napi::Value backward(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    at::Tensor& output = unwrap(info[0], "tensor");
    at::Tensor gradient;
    if (!info[1].IsNull() && !info[1].IsUndefined()) gradient = unwrap(info[1], "gradient");
    bool retainGraph = info[2].ToBoolean().Value();
    output.backward(gradient, retainGraph, false);
    return env.Undefined();
  });
}

Napi::Value setGradEnabled(const Napi::CallbackInfo& info) {
  bool previous = at::GradMode::is_enabled();
  at::GradMode::set_enabled(info[0].ToBoolean().Value());
  return Napi::Boolean::New(info.Env(), previous);
}

Napi::Value isGradEnabled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), at::GradMode::is_enabled());
}

// Inference mode is an RAII guard in C++; JavaScript enters and leaves it in
// strict LIFO order (try/finally), so the guards live on a stack here.
Napi::Value enterInferenceMode(const Napi::CallbackInfo& info) {
  gInferenceModes.push_back(std::make_unique<c10::InferenceMode>(true));
  return Napi::Number::New(info.Env(), static_cast<double>(gInferenceModes.size()));
}

Napi::Value exitInferenceMode(const Napi::CallbackInfo& info) {
  if (gInferenceModes.empty()) throw Napi::Error::New(info.Env(), "exitInferenceMode without a matching enter");
  gInferenceModes.pop_back();
  return info.Env().Undefined();
}

Napi::Value isInferenceMode(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), c10::InferenceMode::is_enabled());
}

Napi::Value manualSeed(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    at::manual_seed(static_cast<uint64_t>(toInt64(info[0], "seed")));
    return env.Undefined();
  });
}

Napi::Value getRngState(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    auto generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    return wrap(env, generator.get_state());
  });
}

Napi::Value setRngState(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    at::Tensor& state = unwrap(info[0], "state");
    auto generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(state);
    return env.Undefined();
  });
}

Napi::Value getNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), at::get_num_threads());
}

Napi::Value setNumThreads(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    int64_t threads = toInt64(info[0], "thread count");
    if (threads < 1) throw Napi::RangeError::New(env, "thread count must be >= 1");
    at::set_num_threads(static_cast<int>(threads));
    return env.Undefined();
  });
}

Napi::Value liveTensors(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(liveHandles()));
}

Napi::Value buildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto result = Napi::Object::New(env);
  result.Set("torchVersion", TORCH_VERSION);
  result.Set("cuda", at::hasCUDA());
  result.Set("parallelInfo", at::get_parallel_info());
  return result;
}

}  // namespace

int64_t toInt64(const Napi::Value& value, const char* what) {
  if (value.IsBigInt()) {
    bool lossless = true;
    int64_t result = value.As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) throw Napi::RangeError::New(value.Env(), std::string(what) + " does not fit in int64");
    return result;
  }
  if (!value.IsNumber()) throw Napi::TypeError::New(value.Env(), std::string(what) + " must be a number");
  double number = value.As<Napi::Number>().DoubleValue();
  if (number != static_cast<double>(static_cast<int64_t>(number)))
    throw Napi::TypeError::New(value.Env(), std::string(what) + " must be an integer, got " + std::to_string(number));
  return static_cast<int64_t>(number);
}

std::vector<int64_t> toShape(const Napi::Value& value) {
  if (!value.IsArray()) throw Napi::TypeError::New(value.Env(), "shape must be an array of integers");
  auto array = value.As<Napi::Array>();
  std::vector<int64_t> shape(array.Length());
  for (uint32_t i = 0; i < array.Length(); ++i) {
    shape[i] = toInt64(array.Get(i), "shape entry");
    if (shape[i] < 0) throw Napi::RangeError::New(value.Env(), "shape entries must be >= 0");
  }
  return shape;
}

bool isHandle(const Napi::Value& value) { return slotOf(value) != nullptr; }

Napi::Value wrap(Napi::Env env, at::Tensor tensor) {
  uint32_t index;
  if (gFreeSlots.empty()) {
    if (gSlots.size() >= 0xffffffffULL) throw Napi::RangeError::New(env, "too many live tensors");
    index = static_cast<uint32_t>(gSlots.size());
    gSlots.emplace_back();
  } else {
    index = gFreeSlots.back();
    gFreeSlots.pop_back();
  }
  Slot& slot = gSlots[index];
  slot.tensor = std::move(tensor);
  slot.reportedBytes = static_cast<int64_t>(slot.tensor.nbytes());
  Napi::MemoryManagement::AdjustExternalMemory(env, slot.reportedBytes);
  ++gLive;
  return Napi::BigInt::New(env, (static_cast<uint64_t>(slot.generation) << 32) | index);
}

at::Tensor& unwrap(const Napi::Value& value, const char* what) {
  Slot* slot = slotOf(value);
  if (slot != nullptr) return slot->tensor;
  if (isStale(value)) throw Napi::Error::New(value.Env(), std::string(what) + " was used after dispose()");
  throw Napi::TypeError::New(value.Env(), std::string(what) + " must be a Tensor");
}

int64_t liveHandles() { return gLive; }

void initTensor(Napi::Env env, Napi::Object exports) {
  exports.Set("fromBuffer", Napi::Function::New(env, fromBuffer));
  exports.Set("toBuffer", Napi::Function::New(env, toBuffer));
  exports.Set("dispose", Napi::Function::New(env, dispose));
  exports.Set("isDisposed", Napi::Function::New(env, isDisposed));
  exports.Set("shape", Napi::Function::New(env, shape));
  exports.Set("dtype", Napi::Function::New(env, dtype));
  exports.Set("device", Napi::Function::New(env, device));
  exports.Set("item", Napi::Function::New(env, item));
  exports.Set("requiresGrad", Napi::Function::New(env, requiresGrad));
  exports.Set("version", Napi::Function::New(env, version));
  exports.Set("setRequiresGrad", Napi::Function::New(env, setRequiresGrad));
  exports.Set("hasGradFn", Napi::Function::New(env, hasGradFn));
  exports.Set("isInference", Napi::Function::New(env, isInference));
  exports.Set("grad", Napi::Function::New(env, grad));
  exports.Set("setGrad", Napi::Function::New(env, setGrad));
  exports.Set("backward", Napi::Function::New(env, backward));
  exports.Set("setGradEnabled", Napi::Function::New(env, setGradEnabled));
  exports.Set("isGradEnabled", Napi::Function::New(env, isGradEnabled));
  exports.Set("enterInferenceMode", Napi::Function::New(env, enterInferenceMode));
  exports.Set("exitInferenceMode", Napi::Function::New(env, exitInferenceMode));
  exports.Set("isInferenceMode", Napi::Function::New(env, isInferenceMode));
  exports.Set("manualSeed", Napi::Function::New(env, manualSeed));
  exports.Set("getRngState", Napi::Function::New(env, getRngState));
  exports.Set("setRngState", Napi::Function::New(env, setRngState));
  exports.Set("getNumThreads", Napi::Function::New(env, getNumThreads));
  exports.Set("setNumThreads", Napi::Function::New(env, setNumThreads));
  exports.Set("liveTensors", Napi::Function::New(env, liveTensors));
  exports.Set("buildInfo", Napi::Function::New(env, buildInfo));
}

}  // namespace vt
