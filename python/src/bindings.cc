// kiln._kiln: the C++ half of the Python package. Policy stays in C++ (settings resolution, name
// parsing, validation); python/kiln adds ergonomics. Every Status becomes an exception of the
// class python/kiln/errors.py registers for its code.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dlpack_bridge.h"
#include "kiln/builder.h"
#include "kiln/engine.h"
#include "kiln/runtime.h"
#include "kiln/version.h"

namespace py = pybind11;

namespace kiln::python {
namespace {

std::map<StatusCode, py::object>& error_classes() {
  static auto* m = new std::map<StatusCode, py::object>();
  return *m;
}

[[noreturn]] void raise(const Status& s) {
  auto it = error_classes().find(s.code());
  PyObject* cls = it != error_classes().end() ? it->second.ptr() : PyExc_RuntimeError;
  PyErr_SetString(cls, s.message().c_str());
  throw py::error_already_set();
}

template <typename T>
T take(Result<T> r) {
  if (!r.ok()) raise(r.status());
  return std::move(r).value();
}

// Settings travel between Python and C++ as dicts keyed by the user-facing names; a missing key
// is an unset field. runtime_cache: a path, or None / "none" for no cache.
RuntimeSettings settings_from_dict(const py::dict& d) {
  RuntimeSettings s;
  for (auto [k, v] : d) {
    std::string key = py::cast<std::string>(k);
    if (key == kCudaGraphStrategyName) {
      s.cuda_graph_strategy = take(parse_cuda_graph_strategy(py::cast<std::string>(v)));
    } else if (key == kKernelSpecializationName) {
      s.kernel_specialization = take(parse_kernel_specialization_strategy(py::cast<std::string>(v)));
    } else if (key == kRuntimeCacheName) {
      s.runtime_cache = v.is_none() ? RuntimeCacheSetting::none()
                                    : take(parse_runtime_cache(py::cast<std::string>(py::str(v))));
    } else if (key == kMultiDeviceSafeModeName) {
      if (!py::isinstance<py::bool_>(v)) raise(invalid_argument("multi_device_safe_mode must be a bool"));
      s.multi_device_safe_mode = py::cast<bool>(v);
    } else {
      raise(invalid_argument("unknown runtime setting '" + key + "'; expected " + std::string(kCudaGraphStrategyName) +
                             "|" + std::string(kKernelSpecializationName) + "|" + std::string(kRuntimeCacheName) +
                             "|" + std::string(kMultiDeviceSafeModeName)));
    }
  }
  return s;
}

py::object cache_to_py(const RuntimeCacheSetting& c) {
  if (c.kind() == RuntimeCacheSetting::Kind::kPath) return py::str(c.path());
  if (c.kind() == RuntimeCacheSetting::Kind::kNone) return py::none();
  return py::str(c.to_string());
}

py::dict settings_to_dict(const RuntimeSettings& s) {
  py::dict d;
  if (s.cuda_graph_strategy) d[kCudaGraphStrategyName.data()] = std::string(to_string(*s.cuda_graph_strategy));
  if (s.kernel_specialization) d[kKernelSpecializationName.data()] = std::string(to_string(*s.kernel_specialization));
  if (s.runtime_cache.is_set()) d[kRuntimeCacheName.data()] = cache_to_py(s.runtime_cache);
  if (s.multi_device_safe_mode) d[kMultiDeviceSafeModeName.data()] = *s.multi_device_safe_mode;
  return d;
}

py::dict resolved_to_dict(const ResolvedSettings& r) {
  py::dict values, sources;
  values[kCudaGraphStrategyName.data()] = std::string(to_string(r.cuda_graph_strategy));
  values[kKernelSpecializationName.data()] = std::string(to_string(r.kernel_specialization));
  values[kRuntimeCacheName.data()] = cache_to_py(r.runtime_cache);
  values[kMultiDeviceSafeModeName.data()] = r.multi_device_safe_mode;
  sources[kCudaGraphStrategyName.data()] = std::string(to_string(r.sources.cuda_graph_strategy));
  sources[kKernelSpecializationName.data()] = std::string(to_string(r.sources.kernel_specialization));
  sources[kRuntimeCacheName.data()] = std::string(to_string(r.sources.runtime_cache));
  sources[kMultiDeviceSafeModeName.data()] = std::string(to_string(r.sources.multi_device_safe_mode));
  py::dict out;
  out["values"] = values;
  out["sources"] = sources;
  return out;
}

py::dict binding_to_dict(const BindingInfo& b) {
  py::dict d;
  d["name"] = b.name;
  d["dtype"] = std::string(dtype_name(b.dtype));
  d["dims"] = b.dims;
  d["min"] = b.min;
  d["opt"] = b.opt;
  d["max"] = b.max;
  return d;
}

BuildOptions build_options(const py::dict& shapes, const std::string& precision, const std::string& name,
                           int opt_level, const std::map<std::string, std::string>& metadata) {
  BuildOptions o;
  o.precision = take(precision_parse(precision));
  o.name = name;
  o.optimization_level = opt_level;
  o.metadata = metadata;
  for (auto [k, v] : shapes) {
    ShapeProfile p;
    p.input = py::cast<std::string>(k);
    auto t = py::cast<py::tuple>(v);
    if (t.size() != 3) raise(invalid_argument("shapes['" + p.input + "'] must be (min, opt, max)"));
    p.min = py::cast<Dims>(t[0]);
    p.opt = py::cast<Dims>(t[1]);
    p.max = py::cast<Dims>(t[2]);
    o.shapes.push_back(std::move(p));
  }
  return o;
}

// Runs with the Python scope's settings pushed as this thread's C++ scope for the call's length.
// A numpy array (zero-copy through the buffer protocol; read-only arrays are fine) as a Tensor.
Result<Tensor> tensor_from_numpy(const py::array& a) {
  py::dtype dt = a.dtype();
  DType d = DType::kUndefined;
  // Through Python attributes, not pybind11's view of the descriptor struct: NumPy 2 moved its
  // item size, which pybind11 before 2.12 (Debian 12 ships 2.10) then misreads.
  const std::string kinds = py::cast<std::string>(dt.attr("kind"));
  const char kind = kinds.empty() ? '?' : kinds[0];
  const size_t size = py::cast<size_t>(dt.attr("itemsize"));
  if (kind == 'f') d = size == 4 ? DType::kF32 : size == 8 ? DType::kF64 : size == 2 ? DType::kF16 : d;
  if (kind == 'i') d = size == 1 ? DType::kI8 : size == 2 ? DType::kI16 : size == 4 ? DType::kI32 : size == 8 ? DType::kI64 : d;
  if (kind == 'u') d = size == 1 ? DType::kU8 : size == 2 ? DType::kU16 : size == 4 ? DType::kU32 : size == 8 ? DType::kU64 : d;
  if (kind == 'b') d = DType::kBool;
  if (d == DType::kUndefined)
    return invalid_argument("numpy dtype " + std::string(py::str(dt)) + " is not supported by kiln");
  if (!(a.flags() & py::array::c_style))
    return invalid_argument("kiln needs C-contiguous arrays; call np.ascontiguousarray first");
  Dims dims(a.shape(), a.shape() + a.ndim());
  auto* keep = new py::object(a);
  std::shared_ptr<void> owner(keep, [](void* p) {
    py::gil_scoped_acquire gil;
    delete static_cast<py::object*>(p);
  });
  return Tensor::wrap(d, std::move(dims), const_cast<void*>(a.data()), std::move(owner));
}

std::vector<py::capsule> engine_run(const Engine& engine, const std::vector<py::object>& objects,
                                    const std::string& backend, int device, std::optional<py::dict> call,
                                    std::optional<py::dict> module, std::optional<py::dict> scope,
                                    uintptr_t stream) {
  std::vector<Tensor> inputs;
  inputs.reserve(objects.size());
  for (const py::object& o : objects) {
    if (py::isinstance<py::capsule>(o)) {
      inputs.push_back(take(tensor_from_capsule(py::reinterpret_borrow<py::capsule>(o))));
    } else if (py::isinstance<py::array>(o)) {
      inputs.push_back(take(tensor_from_numpy(py::reinterpret_borrow<py::array>(o))));
    } else {
      raise(invalid_argument("inputs must be DLPack capsules or numpy arrays"));
    }
  }
  RuntimeSettings call_s = call ? settings_from_dict(*call) : RuntimeSettings{};
  RuntimeSettings module_s = module ? settings_from_dict(*module) : RuntimeSettings{};
  RuntimeSettings scope_s = scope ? settings_from_dict(*scope) : RuntimeSettings{};
  RunOptions options;
  options.backend = backend;
  options.device = device;
  options.settings = call ? &call_s : nullptr;
  options.engine_settings = module ? &module_s : nullptr;
  // The caller's CUDA stream (0: kiln's own stream, and run() waits for the results).
  options.stream = reinterpret_cast<void*>(stream);
  Result<std::vector<Tensor>> out = Status();
  {
    py::gil_scoped_release release;
    ScopedRuntimeSettings guard(scope_s);
    out = engine.run(inputs, options);
    inputs.clear();  // drop producer buffers without the GIL held by us... deleters re-acquire it
  }
  std::vector<Tensor> tensors = take(std::move(out));
  std::vector<py::capsule> result;
  for (const Tensor& t : tensors) result.push_back(tensor_to_capsule(t));
  return result;
}

// Engine::is_stream_capturable for a call with these settings layers: (capturable, reason).
py::tuple engine_capturable(const Engine& engine, const std::vector<Dims>& shapes, const std::string& backend,
                            int device, std::optional<py::dict> call, std::optional<py::dict> module,
                            std::optional<py::dict> scope) {
  RuntimeSettings call_s = call ? settings_from_dict(*call) : RuntimeSettings{};
  RuntimeSettings module_s = module ? settings_from_dict(*module) : RuntimeSettings{};
  RuntimeSettings scope_s = scope ? settings_from_dict(*scope) : RuntimeSettings{};
  RunOptions options;
  options.backend = backend;
  options.device = device;
  options.settings = call ? &call_s : nullptr;
  options.engine_settings = module ? &module_s : nullptr;
  std::string reason;
  bool ok = false;
  {
    py::gil_scoped_release release;  // may run the engine once to find out
    ScopedRuntimeSettings guard(scope_s);
    ok = engine.is_stream_capturable(options, shapes, &reason);
  }
  return py::make_tuple(ok, reason);
}

}  // namespace

PYBIND11_MODULE(_kiln, m) {
  m.doc() = "kiln C++ core (use the kiln package, not this module)";
  m.attr("__version__") = KILN_VERSION_STRING;

  m.def("_set_error_classes", [](const py::dict& classes) {
    for (auto [k, v] : classes) error_classes()[static_cast<StatusCode>(py::cast<int>(k))] = py::reinterpret_borrow<py::object>(v);
  });
  py::enum_<StatusCode>(m, "StatusCode")
      .value("invalid_argument", StatusCode::kInvalidArgument)
      .value("not_found", StatusCode::kNotFound)
      .value("invalid_data", StatusCode::kInvalidData)
      .value("io_error", StatusCode::kIoError)
      .value("unsupported", StatusCode::kUnsupported)
      .value("resource_exhausted", StatusCode::kResourceExhausted)
      .value("unavailable", StatusCode::kUnavailable)
      .value("device_error", StatusCode::kDeviceError)
      .value("mismatch", StatusCode::kMismatch)
      .value("cancelled", StatusCode::kCancelled)
      .value("internal", StatusCode::kInternal);

  m.def("build", [](py::object model, const std::string& base_dir, const py::dict& shapes, const std::string& precision,
                    const std::string& name, int opt_level, const std::map<std::string, std::string>& metadata) {
    BuildOptions o = build_options(shapes, precision, name, opt_level, metadata);
    Result<std::vector<uint8_t>> r = Status();
    if (py::isinstance<py::bytes>(model)) {
      std::string bytes = py::cast<std::string>(model);
      py::gil_scoped_release release;
      r = build_engine_from_bytes(bytes, base_dir, o);
    } else {
      std::string path = py::cast<std::string>(py::str(model));
      py::gil_scoped_release release;
      r = build_engine(path, o);
    }
    std::vector<uint8_t> bytes = take(std::move(r));
    return py::bytes(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  });

  // Opens a backend ahead of the first run (kiln.load does for PyTorch's current CUDA device).
  m.def("prepare_backend", [](const std::string& backend, int device) {
    Status s;
    {
      py::gil_scoped_release release;
      s = prepare_backend(backend, device);
    }
    if (!s.ok()) raise(s);
  });

  // Settings: validation, process defaults, resolution (the one parser is C++'s).
  m.def("validate_settings", [](const py::dict& d) { return settings_to_dict(settings_from_dict(d)); });
  m.def("set_default_settings", [](const py::dict& d) { set_default_runtime_settings(settings_from_dict(d)); });
  m.def("update_default_settings", [](const py::dict& d) { update_default_runtime_settings(settings_from_dict(d)); });
  m.def("default_settings", [] { return settings_to_dict(default_runtime_settings()); });
  m.def("resolve_settings", [](std::optional<py::dict> call, std::optional<py::dict> module, std::optional<py::dict> scope) {
    RuntimeSettings c = call ? settings_from_dict(*call) : RuntimeSettings{};
    RuntimeSettings mo = module ? settings_from_dict(*module) : RuntimeSettings{};
    RuntimeSettings sc = scope ? settings_from_dict(*scope) : RuntimeSettings{};
    ScopedRuntimeSettings guard(sc);
    return resolved_to_dict(resolve_runtime_settings(call ? &c : nullptr, module ? &mo : nullptr));
  }, py::arg("call") = py::none(), py::arg("module") = py::none(), py::arg("scope") = py::none());

  py::class_<Engine, std::shared_ptr<Engine>>(m, "Engine")
      .def_static("load", [](const std::string& path) { return take(Engine::load(path)); })
      .def_static("from_bytes", [](const py::bytes& b) {
        std::string s = b;
        return take(Engine::load_from_memory(std::vector<uint8_t>(s.begin(), s.end())));
      })
      .def_property_readonly("name", [](const Engine& e) { return e.info().name; })
      .def_property_readonly("inputs", [](const Engine& e) {
        py::list l;
        for (const auto& b : e.inputs()) l.append(binding_to_dict(b));
        return l;
      })
      .def_property_readonly("outputs", [](const Engine& e) {
        py::list l;
        for (const auto& b : e.outputs()) l.append(binding_to_dict(b));
        return l;
      })
      .def_property_readonly("info", [](const Engine& e) {
        const EngineInfo& i = e.info();
        py::dict d;
        d["name"] = i.name;
        d["format_version"] = std::to_string(i.format_major) + "." + std::to_string(i.format_minor);
        d["kiln_version"] = i.kiln_version;
        d["precision"] = std::string(precision_name(i.precision));
        d["op_histogram"] = i.op_histogram;
        d["weight_bytes"] = i.weight_bytes;
        d["metadata"] = i.metadata;
        return d;
      })
      .def("run", &engine_run, py::arg("inputs"), py::arg("backend") = "cpu", py::arg("device") = 0,
           py::arg("call") = py::none(), py::arg("module") = py::none(), py::arg("scope") = py::none(),
           py::arg("stream") = 0)
      .def("is_stream_capturable", &engine_capturable, py::arg("shapes"), py::arg("backend") = "cuda",
           py::arg("device") = 0, py::arg("call") = py::none(), py::arg("module") = py::none(),
           py::arg("scope") = py::none())
      .def("stats", [](const Engine& e) {
        EngineStats s = e.stats();
        py::dict d;
        d["calls"] = s.calls;
        d["contexts_created"] = s.contexts_created;
        d["contexts_reused"] = s.contexts_reused;
        d["contexts_evicted"] = s.contexts_evicted;
        d["calls_per_context"] = s.calls_per_context;
        d["backend_counters"] = s.backend_counters;
        return d;
      });
}

}  // namespace kiln::python
