// c10d process groups for data-parallel training: Gloo over TCP, with a TCPStore
// whose server runs on rank 0 (as torch.distributed's env:// rendezvous does).
// Everything that can wait on other processes (rendezvous, collectives) runs off
// the JavaScript thread and returns a Promise, so the event loop (signal handlers,
// loader workers) keeps running; each wait is bounded by the group's timeout.
// Collectives are enqueued on the JavaScript thread, in call order: Gloo pairs
// operations across ranks by their enqueue order.
#define USE_C10D_GLOO  // Debian's libtorch is built with Gloo; this selects its declarations.
#include "handle.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace vt {
namespace {

const napi_type_tag kGroupTag = {0x76696c62657274ULL, 0x74732d633130640aULL};

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> processGroup;
  int rank = 0;
  int worldSize = 0;
  std::string master;  // "addr:port", for messages
  std::chrono::milliseconds timeout{0};

  std::string where(const std::string& operation) const {
    return "c10d " + operation + " on rank " + std::to_string(rank) + " of " + std::to_string(worldSize) +
           " (master " + master + ", timeout " + std::to_string(timeout.count()) + " ms)";
  }
};

// Runs body on a libuv worker thread and settles a Promise: resolved with
// result(env) (undefined without one), or rejected with an Error that starts
// with context.
class Task : public Napi::AsyncWorker {
 public:
  Task(Napi::Env env, std::string context, std::function<void()> body,
       std::function<Napi::Value(Napi::Env)> result = nullptr)
      : Napi::AsyncWorker(env, "vilbert:c10d"),
        deferred_(Napi::Promise::Deferred::New(env)),
        context_(std::move(context)),
        body_(std::move(body)),
        result_(std::move(result)) {}

  static Napi::Promise start(Task* task) {
    Napi::Promise promise = task->deferred_.Promise();
    task->Queue();
    return promise;
  }

 protected:
  void Execute() override {
    try {
      body_();
    } catch (const c10::Error& error) {
      SetError(context_ + ": " + error.what_without_backtrace());
    } catch (const std::exception& error) {
      SetError(context_ + ": " + error.what());
    }
  }
  void OnOK() override { deferred_.Resolve(result_ ? result_(Env()) : Env().Undefined()); }
  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::string context_;
  std::function<void()> body_;
  std::function<Napi::Value(Napi::Env)> result_;
};

Group* unwrapGroup(const Napi::Value& value, bool live = true) {
  bool tagged = false;
  if (value.IsExternal()) napi_check_object_type_tag(value.Env(), value, &kGroupTag, &tagged);
  if (!tagged) throw Napi::TypeError::New(value.Env(), "expected a process group handle");
  Group* group = value.As<Napi::External<Group>>().Data();
  if (live && !group->processGroup) throw Napi::Error::New(value.Env(), group->where("call") + ": used after destroy()");
  return group;
}

int intOption(const Napi::Object& options, const char* name, int low, int high) {
  Napi::Value value = options.Get(name);
  double number = value.IsNumber() ? value.As<Napi::Number>().DoubleValue() : -1.0;
  if (!value.IsNumber() || number != static_cast<double>(static_cast<int64_t>(number)) || number < low || number > high) {
    throw Napi::TypeError::New(options.Env(), std::string("distInit: ") + name + " must be an integer in " +
                                                  std::to_string(low) + ".." + std::to_string(high));
  }
  return static_cast<int>(number);
}

std::string stringOption(const Napi::Object& options, const char* name) {
  Napi::Value value = options.Get(name);
  if (value.IsUndefined() || value.IsNull()) return "";
  if (!value.IsString()) throw Napi::TypeError::New(options.Env(), std::string("distInit: ") + name + " must be a string");
  return value.As<Napi::String>().Utf8Value();
}

// distInit({rank, worldSize, masterAddr, masterPort, timeoutMs, interface?, hostname?}):
// Promise<group>. The Gloo device binds to `interface` (GLOO_SOCKET_IFNAME), else to
// `hostname`, else to this machine's hostname (loopback if it does not resolve).
Napi::Value distInit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "distInit expects an options object");
  auto options = info[0].As<Napi::Object>();
  auto group = std::make_shared<Group>();
  group->worldSize = intOption(options, "worldSize", 1, 1 << 20);
  group->rank = intOption(options, "rank", 0, group->worldSize - 1);
  int port = intOption(options, "masterPort", 0, 65535);
  group->timeout = std::chrono::milliseconds(intOption(options, "timeoutMs", 1, 1 << 30));
  std::string masterAddr = stringOption(options, "masterAddr");
  if (masterAddr.empty()) throw Napi::TypeError::New(env, "distInit: masterAddr must be a non-empty string");
  std::string interface = stringOption(options, "interface");
  std::string hostname = stringOption(options, "hostname");
  group->master = masterAddr + ":" + std::to_string(port);

  std::string context = group->where("init_process_group (gloo)");
  auto body = [group, masterAddr, port, interface, hostname]() {
    c10d::TCPStoreOptions storeOptions;
    storeOptions.port = static_cast<std::uint16_t>(port);
    storeOptions.isServer = group->rank == 0;
    storeOptions.numWorkers = static_cast<std::size_t>(group->worldSize);
    storeOptions.waitWorkers = true;
    storeOptions.timeout = group->timeout;
    group->store = c10::make_intrusive<c10d::TCPStore>(masterAddr, storeOptions);

    auto glooOptions = c10d::ProcessGroupGloo::Options::create(group->timeout);
    glooOptions->devices.push_back(!interface.empty() ? c10d::ProcessGroupGloo::createDeviceForInterface(interface)
                                   : !hostname.empty() ? c10d::ProcessGroupGloo::createDeviceForHostname(hostname)
                                                       : c10d::ProcessGroupGloo::createDefaultDevice());
    glooOptions->threads = 2;  // torch.distributed's choice: two per device
    group->processGroup =
        c10::make_intrusive<c10d::ProcessGroupGloo>(group->store, group->rank, group->worldSize, glooOptions);
  };
  auto result = [group](Napi::Env resultEnv) -> Napi::Value {
    auto external = Napi::External<Group>::New(resultEnv, new Group(*group), [](Napi::Env, Group* owned) { delete owned; });
    napi_type_tag_object(resultEnv, external, &kGroupTag);
    return external;
  };
  return Task::start(new Task(env, context, body, result));
}

std::vector<at::Tensor> tensorsOf(const Napi::Value& value, const char* operation) {
  if (!value.IsArray()) throw Napi::TypeError::New(value.Env(), std::string(operation) + " expects an array of tensors");
  auto array = value.As<Napi::Array>();
  std::vector<at::Tensor> tensors;
  for (uint32_t i = 0; i < array.Length(); ++i) tensors.push_back(unwrap(array.Get(i), "collective operand"));
  return tensors;
}

// Enqueues one collective per tensor (enqueue(tensors) on this thread) and returns
// a Promise settled when all have completed, each waited for at most the timeout.
template <typename Enqueue>
Napi::Value collective(const Napi::CallbackInfo& info, const char* operation, Enqueue enqueue) {
  Napi::Env env = info.Env();
  Group* group = unwrapGroup(info[0]);
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  try {
    works = enqueue(*group->processGroup);
  } catch (const c10::Error& error) {
    throw Napi::Error::New(env, group->where(operation) + ": " + error.what_without_backtrace());
  } catch (const std::exception& error) {
    throw Napi::Error::New(env, group->where(operation) + ": " + error.what());
  }
  auto timeout = group->timeout;
  auto body = [works, timeout]() {
    for (const auto& work : works) work->wait(timeout);
  };
  return Task::start(new Task(env, group->where(operation), body));
}

// distAllreduce(group, tensors): sums each tensor over all ranks, in place.
Napi::Value distAllreduce(const Napi::CallbackInfo& info) {
  auto tensors = tensorsOf(info[1], "distAllreduce");
  return collective(info, "allreduce", [&](c10d::ProcessGroupGloo& processGroup) {
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (auto& tensor : tensors) {
      std::vector<at::Tensor> operand{tensor};
      works.push_back(processGroup.allreduce(operand));
    }
    return works;
  });
}

// distBroadcast(group, tensors, root): copies root's tensors into every rank's, in place.
Napi::Value distBroadcast(const Napi::CallbackInfo& info) {
  auto tensors = tensorsOf(info[1], "distBroadcast");
  if (!info[2].IsNumber()) throw Napi::TypeError::New(info.Env(), "distBroadcast expects a root rank");
  c10d::BroadcastOptions options;
  options.rootRank = info[2].As<Napi::Number>().Int64Value();
  return collective(info, "broadcast", [&](c10d::ProcessGroupGloo& processGroup) {
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (auto& tensor : tensors) {
      std::vector<at::Tensor> operand{tensor};
      works.push_back(processGroup.broadcast(operand, options));
    }
    return works;
  });
}

Napi::Value distBarrier(const Napi::CallbackInfo& info) {
  return collective(info, "barrier", [](c10d::ProcessGroupGloo& processGroup) {
    return std::vector<c10::intrusive_ptr<c10d::Work>>{processGroup.barrier()};
  });
}

// Releases the process group and the store (the store's server, on rank 0); waits
// for work still in flight (bounded by the timeout). Destroying twice is a no-op.
Napi::Value distDestroy(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    Group* group = unwrapGroup(info[0], false);
    group->processGroup.reset();
    group->store.reset();
    return env.Undefined();
  });
}

}  // namespace

void initDistributed(Napi::Env env, Napi::Object exports) {
  exports.Set("distInit", Napi::Function::New(env, distInit));
  exports.Set("distAllreduce", Napi::Function::New(env, distAllreduce));
  exports.Set("distBroadcast", Napi::Function::New(env, distBroadcast));
  exports.Set("distBarrier", Napi::Function::New(env, distBarrier));
  exports.Set("distDestroy", Napi::Function::New(env, distDestroy));
}

}  // namespace vt
