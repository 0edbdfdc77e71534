{
  "targets": [
    {
      "target_name": "vilbert_torch",
      "sources": ["src/addon.cc", "src/tensor.cc", "src/dispatch.cc", "src/lmdb.cc", "src/distributed.cc", "src/optim.cc", "src/random.cc", "src/rows.cc", "src/cpu_allocator.cc", "src/files.cc", "src/precision.cc"],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<@(libtorch_include)"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS", "<@(libtorch_defines)"],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-O2", "-fopenmp", "-fexceptions", "-frtti", "-Wno-unused-parameter", "-Wno-deprecated-declarations"],
      "libraries": ["-L<(libtorch_lib)", "-Wl,-rpath,<(libtorch_lib)", "-ltorch", "-ltorch_cpu", "-lc10", "-llmdb", "-lz", "-fopenmp"]
    }
  ]
}
