// Operator schemas of cwrnn_ext and the (empty) Python module that loads them.
// Device kernels register in cpu/ and cuda/; fake kernels and autograd are in cwrnn_ext/ops.py.
// Named _C.abi3.so and tagged abi3 (setup.py), so only CPython's stable ABI may be used here.
#ifndef Py_LIMITED_API
#error "cwrnn_ext: Py_LIMITED_API must be defined (setup.py defines it where torch does not)"
#endif
#include <Python.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <cstring>
#include <optional>

#include "kernel_dtypes.h"
#include "cpu/forward_path.h"
#include "cpu/isa_dispatch.h"
#include "cpu/memory_stats.h"
#include "cpu/threads.h"

extern "C" {
// _C.cpu_capability(): the instruction set the CPU kernels run with ("DEFAULT", "AVX2", "AVX512").
static PyObject* cpu_capability(PyObject*, PyObject*) {
  return PyUnicode_FromString(cwrnn::cpu_kernels_name());
}

// _C.last_call_threads(): the intra-op threads this thread's last CPU forward, backward or step
// was given by the work policy (cpu/threads.h), for tests of that policy.
static PyObject* last_call_threads(PyObject*, PyObject*) {
  return PyLong_FromLong(cwrnn::last_call_threads());
}

// _C.set_min_parallel_macs(n): sets the work threshold below which CPU calls run on one thread
// (cpu/threads.h) and returns the previous one; for tests of the threaded paths on small problems.
static PyObject* set_min_parallel_macs(PyObject*, PyObject* arg) {
  const long long macs = PyLong_AsLongLong(arg);
  if (macs == -1 && PyErr_Occurred()) return nullptr;
  if (macs < 0) {
    PyErr_SetString(PyExc_ValueError, "set_min_parallel_macs: macs must be >= 0");
    return nullptr;
  }
  return PyLong_FromLongLong(cwrnn::set_min_parallel_macs(macs));
}

// _C.memory_stats(): {name: int} of what the CPU kernels keep between calls (cpu/memory_stats.h).
// A bad CWRNN_* setting raises RuntimeError with the settings' message.
static PyObject* memory_stats(PyObject*, PyObject*) {
  std::vector<cwrnn::MemoryStat> stats;
  try {
    stats = cwrnn::memory_stats();
  } catch (const c10::Error& error) {
    PyErr_SetString(PyExc_RuntimeError, error.what_without_backtrace());
    return nullptr;
  }
  PyObject* dict = PyDict_New();
  if (dict == nullptr) return nullptr;
  for (const auto& stat : stats) {
    PyObject* value = PyLong_FromLongLong(stat.value);
    if (value == nullptr || PyDict_SetItemString(dict, stat.name, value) < 0) {
      Py_XDECREF(value);
      Py_DECREF(dict);
      return nullptr;
    }
    Py_DECREF(value);
  }
  return dict;
}

// _C.empty_cache(): frees the pool's unused blocks and the idle workspace blocks.
static PyObject* empty_cache(PyObject*, PyObject*) {
  cwrnn::empty_cache();
  Py_RETURN_NONE;
}

// The Python name of a kernel dtype (torch.<name>).
static const char* dtype_name(c10::ScalarType dtype) {
  switch (dtype) {
    case c10::kFloat: return "float32";
    case c10::kDouble: return "float64";
    case c10::kBFloat16: return "bfloat16";
    case c10::kHalf: return "float16";
    default: return c10::toString(dtype);
  }
}

// A new list of the names of the dtypes `op`'s kernel takes on `device` (null, error set, on failure).
static PyObject* dtype_names(cwrnn::KernelOp op, c10::DeviceType device) {
  const auto dtypes = cwrnn::kernel_dtypes(op, device);
  PyObject* names = PyList_New(static_cast<Py_ssize_t>(dtypes.size()));
  for (size_t i = 0; names != nullptr && i < dtypes.size(); ++i) {
    PyObject* name = PyUnicode_FromString(dtype_name(dtypes[i]));
    if (name == nullptr) Py_CLEAR(names);
    else PyList_SetItem(names, static_cast<Py_ssize_t>(i), name);  // steals name
  }
  return names;
}

// _C.kernel_dtypes(): {"sequence" | "step": {"cpu" | "cuda": [dtype names]}}, kernel_dtypes.h's
// table (what each device's kernel takes when it is built).
static PyObject* kernel_dtypes(PyObject*, PyObject*) {
  using cwrnn::KernelOp;
  constexpr auto cpu = c10::DeviceType::CPU, cuda = c10::DeviceType::CUDA;
  return Py_BuildValue("{s:{s:N,s:N},s:{s:N,s:N}}",
                       "sequence", "cpu", dtype_names(KernelOp::kSequence, cpu),
                       "cuda", dtype_names(KernelOp::kSequence, cuda),
                       "step", "cpu", dtype_names(KernelOp::kStep, cpu),
                       "cuda", dtype_names(KernelOp::kStep, cuda));
}

// _C.forward_path(steps, batch, hidden, groups, dtype_name): the path the CPU forward's rule
// (cpu/forward_path.h) picks for that shape, ignoring any forced path.
static PyObject* forward_path(PyObject*, PyObject* args) {
  long long steps, batch, hidden, groups;
  const char* dtype = nullptr;
  if (!PyArg_ParseTuple(args, "LLLLs", &steps, &batch, &hidden, &groups, &dtype)) return nullptr;
  c10::ScalarType scalar_type = c10::ScalarType::Undefined;
  for (const auto candidate : cwrnn::kSequenceDtypes)
    if (std::strcmp(dtype_name(candidate), dtype) == 0) scalar_type = candidate;
  if (scalar_type == c10::ScalarType::Undefined || steps < 0 || batch < 0 || hidden < 0 || groups < 1) {
    PyErr_SetString(PyExc_ValueError, "forward_path: sizes must be >= 0, groups >= 1 and dtype a kernel dtype");
    return nullptr;
  }
  const auto path = cwrnn::forward_path_rule(steps, batch, hidden, static_cast<size_t>(groups), scalar_type);
  return PyUnicode_FromString(cwrnn::forward_path_name(path));
}

// _C.last_forward_path(): the path this thread's last CPU forward took.
static PyObject* last_forward_path(PyObject*, PyObject*) {
  return PyUnicode_FromString(cwrnn::forward_path_name(cwrnn::last_forward_path()));
}

// _C.force_forward_path(name or None): makes every later CPU forward take "time_major" or
// "module_major" (where its dtype allows; module-major keeps its pipelined variant), None: the
// rule again. Returns the previous setting. For tests and benchmarks.
static PyObject* force_forward_path(PyObject*, PyObject* arg) {
  std::optional<cwrnn::ForwardPath> path;
  if (arg != Py_None) {
    const char* name = nullptr;
    if (PyUnicode_Check(arg) && PyArg_Parse(arg, "s", &name)) path = cwrnn::forward_path_from_name(name);
    if (!path || *path == cwrnn::ForwardPath::kPipelined) {
      if (!PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError, "force_forward_path: path must be 'time_major', 'module_major' or None");
      return nullptr;
    }
  }
  const auto previous = cwrnn::force_forward_path(path);
  if (!previous) Py_RETURN_NONE;
  return PyUnicode_FromString(cwrnn::forward_path_name(*previous));
}

// Importing cwrnn_ext._C runs the static registrations below; the module holds these functions.
PyObject* PyInit__C(void) {
  static PyMethodDef methods[] = {
      {"cpu_capability", cpu_capability, METH_NOARGS, "The instruction set the CPU kernels run with."},
      {"last_call_threads", last_call_threads, METH_NOARGS, "Threads given to this thread's last CPU call."},
      {"set_min_parallel_macs", set_min_parallel_macs, METH_O, "Sets the CPU work threshold; returns the old."},
      {"memory_stats", memory_stats, METH_NOARGS, "What the CPU kernels keep between calls."},
      {"empty_cache", empty_cache, METH_NOARGS, "Frees the CPU kernels' unused cached memory."},
      {"kernel_dtypes", kernel_dtypes, METH_NOARGS, "Dtypes of each op's kernel per device."},
      {"forward_path", forward_path, METH_VARARGS, "The CPU forward path the rule picks for a shape."},
      {"last_forward_path", last_forward_path, METH_NOARGS, "The path of this thread's last CPU forward."},
      {"force_forward_path", force_forward_path, METH_O, "Forces the CPU forward path; returns the old."},
      {nullptr, nullptr, 0, nullptr}};
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, methods};
  return PyModule_Create(&module_def);
}
}

TORCH_LIBRARY(cwrnn_ext, m) {
  // One Clockwork RNN layer, time-major. bias is bias_ih + bias_hh; nonlinearity is "tanh" or
  // "relu" (a string, so that more can be added without a new schema). Returns (output, h_n).
  m.def(
      "forward(Tensor input, Tensor hx, Tensor weight_ih, Tensor weight_hh, Tensor? bias, "
      "int[] periods, int[] module_sizes, int t0, str nonlinearity, Tensor? lengths) -> (Tensor, Tensor)");
  // Gradients of forward, given those of (output, h_n) (None: zero). Returns (grad_input, grad_hx,
  // grad_weight_ih, grad_weight_hh, grad_bias), each None unless asked for in output_mask (in that
  // order); the work only they need is skipped.
  m.def(
      "backward(Tensor? grad_output, Tensor? grad_h_n, Tensor input, Tensor hx, Tensor weight_ih, "
      "Tensor weight_hh, Tensor output, int[] periods, int[] module_sizes, int t0, str nonlinearity, "
      "Tensor? lengths, bool[5] output_mask=[True, True, True, True, True]) "
      "-> (Tensor?, Tensor?, Tensor?, Tensor?, Tensor?)");
  // One step at a clock per row: row b's clock is t + clocks[b] (t alone without clocks). Only
  // the active groups' rows are computed; the others hold hx. Returns h_next (B, H).
  m.def(
      "step(Tensor input, Tensor hx, Tensor weight_ih, Tensor weight_hh, Tensor? bias_ih, "
      "Tensor? bias_hh, int[] periods, int[] module_sizes, int t, Tensor? clocks, str nonlinearity) "
      "-> Tensor");
  // Gradients of step given dL/dh_next and h_next (output). Returns (grad_input, grad_hx,
  // grad_weight_ih, grad_weight_hh, grad_bias), each None unless asked for in output_mask.
  m.def(
      "step_backward(Tensor grad, Tensor input, Tensor hx, Tensor weight_ih, Tensor weight_hh, "
      "Tensor output, int[] periods, int[] module_sizes, int t, Tensor? clocks, str nonlinearity, "
      "bool[5] output_mask) -> (Tensor?, Tensor?, Tensor?, Tensor?, Tensor?)");
  // For tests only (CPU kernels in generic/test_ops.cpp): the device-generic code that CUDA runs,
  // run on the CPU so that the tests check it without a GPU. No autograd, no fake kernels.
  // forward and backward through the generic module-major with plain recurrences as its
  // backend; same arguments and results as forward / backward.
  m.def(
      "_generic_forward(Tensor input, Tensor hx, Tensor weight_ih, Tensor weight_hh, Tensor? bias, "
      "int[] periods, int[] module_sizes, int t0, str nonlinearity, Tensor? lengths) -> (Tensor, Tensor)");
  m.def(
      "_generic_backward(Tensor? grad_output, Tensor? grad_h_n, Tensor input, Tensor hx, "
      "Tensor weight_ih, Tensor weight_hh, Tensor output, int[] periods, int[] module_sizes, int t0, "
      "str nonlinearity, Tensor? lengths, bool[5] output_mask=[True, True, True, True, True]) "
      "-> (Tensor?, Tensor?, Tensor?, Tensor?, Tensor?)");
  // step through its ATen composite (CUDA's step); same arguments and result as step.
  m.def(
      "_generic_step(Tensor input, Tensor hx, Tensor weight_ih, Tensor weight_hh, Tensor? bias_ih, "
      "Tensor? bias_hh, int[] periods, int[] module_sizes, int t, Tensor? clocks, str nonlinearity) "
      "-> Tensor");
}
