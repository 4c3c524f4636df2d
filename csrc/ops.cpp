// Operator schemas of cwrnn_ext and the (empty) Python module that loads them.
// Device kernels register in cpu/ and cuda/; fake kernels and autograd are in cwrnn_ext/ops.py.
// Named _C.abi3.so and tagged abi3 (setup.py), so only CPython's stable ABI may be used here.
#ifndef Py_LIMITED_API
#error "cwrnn_ext: Py_LIMITED_API must be defined (setup.py defines it where torch does not)"
#endif
#include <Python.h>
#include <torch/library.h>

extern "C" {
// Importing cwrnn_ext._C runs the static registrations below; the module itself is empty.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
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
  // forward, computed one step after another (for short sequences): the same results.
  m.def(
      "forward_time_major(Tensor input, Tensor hx, Tensor weight_ih, Tensor weight_hh, "
      "Tensor? bias, int[] periods, int[] module_sizes, int t0, str nonlinearity, Tensor? lengths) "
      "-> (Tensor, Tensor)");
}
