// Read-only LMDB environments (the image-feature stores), opened as the reference's Python
// readers open them: readonly, lock=False, readahead=False, meminit=False, max_readers=1.
// Every call runs in its own read transaction, as each `with env.begin()` block does there.
// lmdbWrite creates a new store in one write transaction (how the reference's converters
// write theirs).
#include "handle.h"

#include <cstring>

#include <lmdb.h>
#include <sys/stat.h>

#include <cerrno>
#include <string>

namespace vt {
namespace {

const napi_type_tag kLmdbTag = {0x76696c62657274ULL, 0x74732d6c6d646231ULL};

struct LmdbEnv {
  MDB_env* env = nullptr;
  MDB_dbi dbi = 0;
  std::string path;
};

void closeEnv(LmdbEnv* store) {
  if (store->env == nullptr) return;
  mdb_env_close(store->env);
  store->env = nullptr;
}

[[noreturn]] void fail(Napi::Env env, const std::string& path, const char* call, int rc) {
  throw Napi::Error::New(env, "LMDB " + path + ": " + call + ": " + mdb_strerror(rc));
}

LmdbEnv* unwrapEnv(const Napi::Value& value) {
  bool tagged = false;
  if (value.IsExternal()) napi_check_object_type_tag(value.Env(), value, &kLmdbTag, &tagged);
  if (!tagged) throw Napi::TypeError::New(value.Env(), "expected an LMDB environment handle");
  LmdbEnv* store = value.As<Napi::External<LmdbEnv>>().Data();
  if (store->env == nullptr) throw Napi::Error::New(value.Env(), "LMDB " + store->path + ": used after close()");
  return store;
}

// A read transaction that is always aborted (read transactions commit nothing).
class ReadTxn {
 public:
  ReadTxn(Napi::Env env, LmdbEnv* store) {
    int rc = mdb_txn_begin(store->env, nullptr, MDB_RDONLY, &txn_);
    if (rc != MDB_SUCCESS) fail(env, store->path, "mdb_txn_begin", rc);
  }
  ~ReadTxn() { mdb_txn_abort(txn_); }
  ReadTxn(const ReadTxn&) = delete;
  ReadTxn& operator=(const ReadTxn&) = delete;
  MDB_txn* get() const { return txn_; }

 private:
  MDB_txn* txn_ = nullptr;
};

MDB_val keyOf(const Napi::Value& value) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw Napi::TypeError::New(value.Env(), "LMDB key must be a Uint8Array");
  auto bytes = value.As<Napi::Uint8Array>();
  return MDB_val{bytes.ByteLength(), bytes.Data()};
}

// The value under key inside txn (pointing into the memory map), or false when missing.
bool getValue(Napi::Env env, LmdbEnv* store, const ReadTxn& txn, MDB_val* key, MDB_val* value) {
  int rc = mdb_get(txn.get(), store->dbi, key, value);
  if (rc == MDB_NOTFOUND) return false;
  if (rc != MDB_SUCCESS) fail(env, store->path, "mdb_get", rc);
  return true;
}

// LMDB maps the size its meta page records, not the file's: pages past the end of a
// truncated file (an interrupted copy or download) are mapped, and the first read of one
// raises SIGBUS and kills the process. Every page a reader can reach is numbered at most
// the meta page's last page, so a file that holds that many pages is read safely.
void checkFileHoldsPages(Napi::Env env, LmdbEnv* store, const std::string& file, uint64_t size) {
  MDB_envinfo info{};
  MDB_stat stat{};
  int rc = mdb_env_info(store->env, &info);
  if (rc == MDB_SUCCESS) rc = mdb_env_stat(store->env, &stat);
  if (rc != MDB_SUCCESS) {
    closeEnv(store);
    fail(env, store->path, "mdb_env_info", rc);
  }
  const uint64_t needed = (static_cast<uint64_t>(info.me_last_pgno) + 1) * stat.ms_psize;
  if (size < needed) {
    closeEnv(store);
    throw Napi::Error::New(env, "LMDB " + store->path + ": " + file + " is truncated: " + std::to_string(size) +
                                    " bytes, but its pages run to byte " + std::to_string(needed) +
                                    " (an incomplete copy or download?)");
  }
}

Napi::Value lmdbOpen(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    if (!info[0].IsString()) throw Napi::TypeError::New(env, "lmdbOpen expects a path string");
    std::string path = info[0].As<Napi::String>().Utf8Value();
    // A store written with subdir=False (tensorpack's LMDBSerializer) is a single file.
    struct stat status {};
    unsigned int flags = MDB_RDONLY | MDB_NOLOCK | MDB_NORDAHEAD | MDB_NOMEMINIT;
    if (stat(path.c_str(), &status) != 0) fail(env, path, "open", errno);
    if (!S_ISDIR(status.st_mode)) flags |= MDB_NOSUBDIR;

    auto* store = new LmdbEnv{nullptr, 0, path};
    auto external = Napi::External<LmdbEnv>::New(env, store, [](Napi::Env, LmdbEnv* owned) {
      closeEnv(owned);
      delete owned;
    });
    napi_type_tag_object(env, external, &kLmdbTag);

    int rc = mdb_env_create(&store->env);
    if (rc != MDB_SUCCESS) {
      store->env = nullptr;
      fail(env, path, "mdb_env_create", rc);
    }
    const std::string file = (flags & MDB_NOSUBDIR) != 0 ? path : path + "/data.mdb";
    struct stat fileStatus {};
    if (stat(file.c_str(), &fileStatus) != 0) {
      const int error = errno;
      closeEnv(store);
      throw Napi::Error::New(env, "LMDB " + path + ": " + file + ": " + std::strerror(error));
    }
    if (fileStatus.st_size == 0) {
      closeEnv(store);
      throw Napi::Error::New(env, "LMDB " + path + ": " + file + " is empty (0 bytes), not an LMDB file");
    }
    rc = mdb_env_set_maxreaders(store->env, 1);
    if (rc == MDB_SUCCESS) rc = mdb_env_open(store->env, path.c_str(), flags, 0444);
    if (rc != MDB_SUCCESS) {
      closeEnv(store);
      fail(env, path, "mdb_env_open", rc);
    }
    checkFileHoldsPages(env, store, file, static_cast<uint64_t>(fileStatus.st_size));
    MDB_txn* txn = nullptr;
    rc = mdb_txn_begin(store->env, nullptr, MDB_RDONLY, &txn);
    if (rc == MDB_SUCCESS) {
      rc = mdb_dbi_open(txn, nullptr, 0, &store->dbi);
      mdb_txn_abort(txn);
    }
    if (rc != MDB_SUCCESS) {
      closeEnv(store);
      fail(env, path, "mdb_dbi_open", rc);
    }
    return external;
  });
}

Napi::Value lmdbGet(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    LmdbEnv* store = unwrapEnv(info[0]);
    MDB_val key = keyOf(info[1]);
    ReadTxn txn(env, store);
    MDB_val value{};
    if (!getValue(env, store, txn, &key, &value)) return env.Null();
    // The value points into the memory map, valid only inside the transaction: copy it.
    return Napi::Buffer<uint8_t>::Copy(env, static_cast<const uint8_t*>(value.mv_data), value.mv_size);
  });
}

// lmdbView(env, key): the value as an ArrayBuffer over the memory map itself (no copy), or
// null when the key is missing. The map is read-only and lives as long as the environment:
// the caller must never write into the view and must detach it (detachView) before the
// environment can be closed; LmdbReader.withValue does both. With lock=False (MDB_NOLOCK)
// a read transaction protects nothing across processes in any case, so ending it here
// changes nothing for a store no one writes to, which is what the reference assumes too.
Napi::Value lmdbView(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    LmdbEnv* store = unwrapEnv(info[0]);
    MDB_val key = keyOf(info[1]);
    ReadTxn txn(env, store);
    MDB_val value{};
    if (!getValue(env, store, txn, &key, &value)) return env.Null();
    if (value.mv_size == 0) return Napi::ArrayBuffer::New(env, 0);
    return Napi::ArrayBuffer::New(env, value.mv_data, value.mv_size);
  });
}

// detachView(buffer): detaches an ArrayBuffer from lmdbView, so that every typed array over
// it reads as empty from then on (instead of reading an unmapped page after close()).
Napi::Value detachView(const Napi::CallbackInfo& info) {
  if (!info[0].IsArrayBuffer()) throw Napi::TypeError::New(info.Env(), "detachView expects an ArrayBuffer");
  auto buffer = info[0].As<Napi::ArrayBuffer>();
  if (!buffer.IsDetached()) buffer.Detach();
  return info.Env().Undefined();
}

Napi::Value lmdbCount(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    LmdbEnv* store = unwrapEnv(info[0]);
    ReadTxn txn(env, store);
    MDB_stat stat{};
    int rc = mdb_stat(txn.get(), store->dbi, &stat);
    if (rc != MDB_SUCCESS) fail(env, store->path, "mdb_stat", rc);
    return Napi::Number::New(env, static_cast<double>(stat.ms_entries));
  });
}

Napi::Value lmdbKeys(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    LmdbEnv* store = unwrapEnv(info[0]);
    ReadTxn txn(env, store);
    MDB_cursor* cursor = nullptr;
    int rc = mdb_cursor_open(txn.get(), store->dbi, &cursor);
    if (rc != MDB_SUCCESS) fail(env, store->path, "mdb_cursor_open", rc);
    auto keys = Napi::Array::New(env);
    MDB_val key{};
    MDB_val value{};
    uint32_t count = 0;
    while ((rc = mdb_cursor_get(cursor, &key, &value, count == 0 ? MDB_FIRST : MDB_NEXT)) == MDB_SUCCESS) {
      keys.Set(count++, Napi::Buffer<uint8_t>::Copy(env, static_cast<const uint8_t*>(key.mv_data), key.mv_size));
    }
    mdb_cursor_close(cursor);
    if (rc != MDB_NOTFOUND) fail(env, store->path, "mdb_cursor_get", rc);
    return keys;
  });
}

Napi::Value lmdbClose(const Napi::CallbackInfo& info) {
  bool tagged = false;
  if (info[0].IsExternal()) napi_check_object_type_tag(info.Env(), info[0], &kLmdbTag, &tagged);
  if (!tagged) throw Napi::TypeError::New(info.Env(), "lmdbClose expects an LMDB environment handle");
  closeEnv(info[0].As<Napi::External<LmdbEnv>>().Data());
  return info.Env().Undefined();
}

// lmdbWrite(path, keys: Uint8Array[], values: Uint8Array[], mapSize, subdir): a new
// environment (a directory holding data.mdb, or with subdir false a single file), no lock
// file, every pair put in one write transaction. Nothing is left open on failure.
Napi::Value lmdbWrite(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    if (!info[0].IsString()) throw Napi::TypeError::New(env, "lmdbWrite expects a path string");
    std::string path = info[0].As<Napi::String>().Utf8Value();
    if (!info[1].IsArray() || !info[2].IsArray()) throw Napi::TypeError::New(env, "lmdbWrite expects arrays of keys and values");
    auto keys = info[1].As<Napi::Array>();
    auto values = info[2].As<Napi::Array>();
    if (keys.Length() != values.Length()) throw Napi::TypeError::New(env, "lmdbWrite: as many values as keys are needed");
    if (!info[3].IsNumber() || info[3].As<Napi::Number>().DoubleValue() < 1) throw Napi::TypeError::New(env, "lmdbWrite: mapSize must be a positive number");
    if (!info[4].IsBoolean()) throw Napi::TypeError::New(env, "lmdbWrite: subdir must be a boolean");
    for (uint32_t i = 0; i < keys.Length(); i++) {
      Napi::Value value = values.Get(i);
      keyOf(keys.Get(i));
      if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
        throw Napi::TypeError::New(env, "LMDB value must be a Uint8Array");
    }
    size_t mapSize = static_cast<size_t>(info[3].As<Napi::Number>().DoubleValue());
    unsigned int flags = MDB_NOLOCK | MDB_NOSYNC | (info[4].As<Napi::Boolean>().Value() ? 0 : MDB_NOSUBDIR);

    LmdbEnv store{nullptr, 0, path};
    int rc = mdb_env_create(&store.env);
    if (rc != MDB_SUCCESS) {
      store.env = nullptr;
      fail(env, path, "mdb_env_create", rc);
    }
    // Closes the environment (aborting an open transaction first) on every way out.
    struct Closer {
      LmdbEnv* store;
      MDB_txn* txn = nullptr;
      ~Closer() {
        if (txn != nullptr) mdb_txn_abort(txn);
        closeEnv(store);
      }
    } closer{&store};
    rc = mdb_env_set_mapsize(store.env, mapSize);
    if (rc != MDB_SUCCESS) fail(env, path, "mdb_env_set_mapsize", rc);
    rc = mdb_env_open(store.env, path.c_str(), flags, 0644);
    if (rc != MDB_SUCCESS) fail(env, path, "mdb_env_open", rc);
    rc = mdb_txn_begin(store.env, nullptr, 0, &closer.txn);
    if (rc != MDB_SUCCESS) fail(env, path, "mdb_txn_begin", rc);
    rc = mdb_dbi_open(closer.txn, nullptr, 0, &store.dbi);
    if (rc != MDB_SUCCESS) fail(env, path, "mdb_dbi_open", rc);
    for (uint32_t i = 0; i < keys.Length(); i++) {
      MDB_val key = keyOf(keys.Get(i));
      auto bytes = values.Get(i).As<Napi::Uint8Array>();
      MDB_val value{bytes.ByteLength(), bytes.Data()};
      rc = mdb_put(closer.txn, store.dbi, &key, &value, 0);
      if (rc != MDB_SUCCESS) fail(env, path, "mdb_put", rc);
    }
    rc = mdb_txn_commit(closer.txn);
    closer.txn = nullptr;  // committed or not, the transaction is gone
    if (rc != MDB_SUCCESS) fail(env, path, "mdb_txn_commit", rc);
    return env.Undefined();
  });
}

}  // namespace

void initLmdb(Napi::Env env, Napi::Object exports) {
  exports.Set("lmdbOpen", Napi::Function::New(env, lmdbOpen));
  exports.Set("lmdbGet", Napi::Function::New(env, lmdbGet));
  exports.Set("lmdbView", Napi::Function::New(env, lmdbView));
  exports.Set("detachView", Napi::Function::New(env, detachView));
  exports.Set("lmdbCount", Napi::Function::New(env, lmdbCount));
  exports.Set("lmdbKeys", Napi::Function::New(env, lmdbKeys));
  exports.Set("lmdbClose", Napi::Function::New(env, lmdbClose));
  exports.Set("lmdbWrite", Napi::Function::New(env, lmdbWrite));
}

}  // namespace vt
