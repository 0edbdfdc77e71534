// One generic entry point for every ATen operator: JavaScript looks an
// operator up once by its schema name, then calls it with positional
// arguments that are converted by the schema's declared types. Calls go
// through the dispatcher, so autograd, inference mode and device selection
// behave exactly as they do in PyTorch.
#include "handle.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>

#include <string>
#include <vector>

namespace vt {
namespace {

std::vector<c10::OperatorHandle> gOperators;

// Script objects (e.g. quantized::LinearPackedParamsBase, what linear_prepack returns)
// travel to JavaScript as tagged externals: the tag keeps any other external out of an
// operator argument. releaseObject() frees the object at once; else the finaliser does.
const napi_type_tag kObjectTag = {0x7669'6c62'6572'7431ULL, 0x6f62'6a65'6374'0001ULL};

Napi::Value wrapObject(Napi::Env env, const c10::IValue& value) {
  auto external = Napi::External<c10::IValue>::New(env, new c10::IValue(value),
                                                   [](Napi::Env, c10::IValue* held) { delete held; });
  external.TypeTag(&kObjectTag);
  return external;
}

c10::IValue& unwrapObject(const Napi::Value& value, const std::string& where) {
  if (!value.IsExternal() || !value.As<Napi::External<c10::IValue>>().CheckTypeTag(&kObjectTag)) {
    throw Napi::TypeError::New(value.Env(), where + " must be a script object returned by an operator");
  }
  c10::IValue* held = value.As<Napi::External<c10::IValue>>().Data();
  if (held->isNone()) throw Napi::TypeError::New(value.Env(), where + ": the object was released");
  return *held;
}

[[noreturn]] void fail(Napi::Env env, const std::string& message) { throw Napi::TypeError::New(env, message); }

int64_t integerOf(const Napi::Value& value, const std::string& where) {
  if (value.IsBigInt()) {
    bool lossless = true;
    int64_t result = value.As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) fail(value.Env(), where + " does not fit in int64");
    return result;
  }
  if (value.IsBoolean()) return value.As<Napi::Boolean>().Value() ? 1 : 0;
  if (!value.IsNumber()) fail(value.Env(), where + " must be an integer");
  double number = value.As<Napi::Number>().DoubleValue();
  if (number != static_cast<double>(static_cast<int64_t>(number)))
    fail(value.Env(), where + " must be an integer, got " + std::to_string(number));
  return static_cast<int64_t>(number);
}

double floatOf(const Napi::Value& value, const std::string& where) {
  if (!value.IsNumber()) fail(value.Env(), where + " must be a number");
  return value.As<Napi::Number>().DoubleValue();
}

// A single value where the schema wants a list (e.g. `int[1] dim`) is taken
// as a list of one, as PyTorch's Python binding does.
std::vector<Napi::Value> elementsOf(const Napi::Value& value) {
  std::vector<Napi::Value> elements;
  if (value.IsArray()) {
    auto array = value.As<Napi::Array>();
    for (uint32_t i = 0; i < array.Length(); ++i) elements.push_back(array.Get(i));
  } else {
    elements.push_back(value);
  }
  return elements;
}

c10::IValue toIValue(const Napi::Value& value, const c10::TypePtr& type, const std::string& where) {
  Napi::Env env = value.Env();
  switch (type->kind()) {
    case c10::TypeKind::TensorType:
      return unwrap(value, where.c_str());
    case c10::TypeKind::OptionalType:
      if (value.IsNull() || value.IsUndefined()) return c10::IValue();
      return toIValue(value, type->containedType(0), where);
    case c10::TypeKind::IntType:
    case c10::TypeKind::SymIntType:
    case c10::TypeKind::ScalarTypeType:
    case c10::TypeKind::LayoutType:
    case c10::TypeKind::MemoryFormatType:
      return integerOf(value, where);
    case c10::TypeKind::FloatType:
      return floatOf(value, where);
    case c10::TypeKind::BoolType:
      if (!value.IsBoolean()) fail(env, where + " must be a boolean");
      return value.As<Napi::Boolean>().Value();
    case c10::TypeKind::NumberType:
      if (value.IsBoolean()) return at::Scalar(value.As<Napi::Boolean>().Value());
      if (value.IsBigInt()) return at::Scalar(integerOf(value, where));
      if (!value.IsNumber()) fail(env, where + " must be a number");
      {
        double number = value.As<Napi::Number>().DoubleValue();
        bool integral = std::isfinite(number) && number == static_cast<double>(static_cast<int64_t>(number));
        return integral ? at::Scalar(static_cast<int64_t>(number)) : at::Scalar(number);
      }
    case c10::TypeKind::ClassType:
      return unwrapObject(value, where);
    case c10::TypeKind::StringType:
      if (!value.IsString()) fail(env, where + " must be a string");
      return value.As<Napi::String>().Utf8Value();
    case c10::TypeKind::DeviceObjType:
      if (!value.IsString()) fail(env, where + " must be a device string such as \"cpu\" or \"cuda:0\"");
      return c10::Device(value.As<Napi::String>().Utf8Value());
    case c10::TypeKind::ListType: {
      const c10::TypePtr& element = type->containedType(0);
      auto items = elementsOf(value);
      switch (element->kind()) {
        case c10::TypeKind::IntType:
        case c10::TypeKind::SymIntType: {
          c10::List<int64_t> list;
          for (size_t i = 0; i < items.size(); ++i) list.push_back(integerOf(items[i], where + "[" + std::to_string(i) + "]"));
          return list;
        }
        case c10::TypeKind::FloatType: {
          c10::List<double> list;
          for (size_t i = 0; i < items.size(); ++i) list.push_back(floatOf(items[i], where + "[" + std::to_string(i) + "]"));
          return list;
        }
        case c10::TypeKind::BoolType: {
          c10::List<bool> list;
          for (const auto& item : items) list.push_back(item.ToBoolean().Value());
          return list;
        }
        case c10::TypeKind::TensorType: {
          c10::List<at::Tensor> list;
          for (size_t i = 0; i < items.size(); ++i) {
            std::string itemWhere = where + "[" + std::to_string(i) + "]";
            list.push_back(unwrap(items[i], itemWhere.c_str()));
          }
          return list;
        }
        case c10::TypeKind::OptionalType: {
          c10::List<c10::optional<at::Tensor>> list;
          for (size_t i = 0; i < items.size(); ++i) {
            std::string itemWhere = where + "[" + std::to_string(i) + "]";
            if (items[i].IsNull() || items[i].IsUndefined()) {
              list.push_back(c10::nullopt);
            } else {
              list.push_back(unwrap(items[i], itemWhere.c_str()));
            }
          }
          return list;
        }
        default:
          fail(env, where + ": unsupported list type " + type->str());
      }
    }
    default:
      fail(env, where + ": unsupported argument type " + type->str());
  }
}

Napi::Value fromIValue(Napi::Env env, const c10::IValue& value) {
  if (value.isTensor()) {
    const at::Tensor& tensor = value.toTensor();
    return tensor.defined() ? wrap(env, tensor) : env.Null();
  }
  if (value.isNone()) return env.Null();
  if (value.isBool()) return Napi::Boolean::New(env, value.toBool());
  if (value.isInt()) return Napi::Number::New(env, static_cast<double>(value.toInt()));
  if (value.isDouble()) return Napi::Number::New(env, value.toDouble());
  if (value.isString()) return Napi::String::New(env, value.toStringRef());
  if (value.isObject()) return wrapObject(env, value);
  if (value.isTensorList()) {
    auto list = value.toTensorList();
    auto array = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); ++i) array.Set(i, wrap(env, list.get(i)));
    return array;
  }
  if (value.isIntList()) {
    auto list = value.toIntList();
    auto array = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); ++i) array.Set(i, Napi::Number::New(env, static_cast<double>(list.get(i))));
    return array;
  }
  if (value.isTuple()) {
    const auto& elements = value.toTupleRef().elements();
    auto array = Napi::Array::New(env, elements.size());
    for (size_t i = 0; i < elements.size(); ++i) array.Set(i, fromIValue(env, elements[i]));
    return array;
  }
  throw Napi::TypeError::New(env, "unsupported return type " + value.tagKind());
}

Napi::Value findOperator(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    std::string name = info[0].As<Napi::String>().Utf8Value();
    std::string overload = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
    auto handle = c10::Dispatcher::singleton().findSchema({name, overload});
    if (!handle.has_value()) {
      throw Napi::Error::New(env, "libtorch has no operator " + name + (overload.empty() ? "" : "." + overload));
    }
    gOperators.push_back(*handle);
    return Napi::Number::New(env, static_cast<double>(gOperators.size() - 1));
  });
}

const c10::OperatorHandle& operatorAt(const Napi::Value& id) {
  double index = id.As<Napi::Number>().DoubleValue();
  if (index < 0 || index >= static_cast<double>(gOperators.size()))
    throw Napi::RangeError::New(id.Env(), "unknown operator id");
  return gOperators[static_cast<size_t>(index)];
}

Napi::Value operatorSchema(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    std::ostringstream text;
    text << operatorAt(info[0]).schema();
    return Napi::String::New(env, text.str());
  });
}

// callOperator(id, args): args are positional, in schema order; `undefined`
// or a missing trailing argument takes the schema's default.
Napi::Value callOperator(const Napi::CallbackInfo& info) {
  const c10::OperatorHandle& op = operatorAt(info[0]);
  const c10::FunctionSchema& schema = op.schema();
  Napi::Env env = info.Env();
  try {
    auto args = info[1].As<Napi::Array>();
    const auto& declared = schema.arguments();
    if (args.Length() > declared.size()) {
      fail(env, "takes at most " + std::to_string(declared.size()) + " arguments, got " + std::to_string(args.Length()));
    }
    torch::jit::Stack stack;
    stack.reserve(declared.size());
    for (size_t i = 0; i < declared.size(); ++i) {
      const c10::Argument& argument = declared[i];
      Napi::Value value = i < args.Length() ? args.Get(static_cast<uint32_t>(i)) : env.Undefined();
      if (value.IsUndefined()) {
        if (argument.default_value().has_value()) {
          stack.push_back(*argument.default_value());
          continue;
        }
        if (argument.type()->kind() != c10::TypeKind::OptionalType) fail(env, "missing argument '" + argument.name() + "'");
      }
      stack.push_back(toIValue(value, argument.type(), "argument '" + argument.name() + "'"));
    }
    op.callBoxed(&stack);
    if (stack.size() == 1) return fromIValue(env, stack[0]);
    auto results = Napi::Array::New(env, stack.size());
    for (size_t i = 0; i < stack.size(); ++i) results.Set(i, fromIValue(env, stack[i]));
    return results;
  } catch (const Napi::Error& error) {
    throw Napi::Error::New(env, schema.name() + ": " + error.Message());
  } catch (const c10::Error& error) {
    throw Napi::Error::New(env, schema.name() + ": " + error.what_without_backtrace());
  } catch (const std::exception& error) {
    throw Napi::Error::New(env, schema.name() + ": " + error.what());
  }
}

// releaseObject(object): frees a script object now (later uses are refused).
Napi::Value releaseObject(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    unwrapObject(info[0], "releaseObject") = c10::IValue();
    return env.Undefined();
  });
}

}  // namespace

void initDispatch(Napi::Env env, Napi::Object exports) {
  exports.Set("findOperator", Napi::Function::New(env, findOperator));
  exports.Set("operatorSchema", Napi::Function::New(env, operatorSchema));
  exports.Set("callOperator", Napi::Function::New(env, callOperator));
  exports.Set("releaseObject", Napi::Function::New(env, releaseObject));
}

}  // namespace vt
