// torch.autocast for the layer, as for nn.RNN: inside an autocast region the forward op runs in
// the region's lower-precision dtype (bfloat16 by default on the CPU, float16 on CUDA), its float32
// tensor arguments cast as the native ops on autocast's lower-precision list cast theirs (float64
// ones are left alone, as autocast leaves them). The casts are recorded by autograd, so the backward
// runs in that dtype too and the gradients reach the float32 parameters through the casts.
#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

namespace cwrnn {
namespace {

using at::Tensor;

using ForwardSignature = std::tuple<Tensor, Tensor>(
    const Tensor&, const Tensor&, const Tensor&, const Tensor&, const std::optional<Tensor>&,
    c10::IntArrayRef, c10::IntArrayRef, int64_t, c10::string_view, const std::optional<Tensor>&);

template <c10::DeviceType device>
std::tuple<Tensor, Tensor> forward_autocast(const Tensor& input, const Tensor& hx,
                                            const Tensor& weight_ih, const Tensor& weight_hh,
                                            const std::optional<Tensor>& bias,
                                            c10::IntArrayRef periods, c10::IntArrayRef module_sizes,
                                            int64_t t0, c10::string_view nonlinearity,
                                            const std::optional<Tensor>& lengths) {
  const c10::impl::ExcludeDispatchKeyGuard no_autocast(
      at::autocast::get_autocast_dispatch_key_from_device_type(device));
  const auto dtype = at::autocast::get_autocast_dtype(device);
  const auto cast = [&](const Tensor& t) { return at::autocast::cached_cast(dtype, t, device); };
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("cwrnn_ext::forward", "")
                             .typed<ForwardSignature>();
  return op.call(cast(input), cast(hx), cast(weight_ih), cast(weight_hh),
                 bias ? std::optional<Tensor>(cast(*bias)) : std::nullopt, periods, module_sizes, t0,
                 nonlinearity, lengths);
}

}  // namespace

TORCH_LIBRARY_IMPL(cwrnn_ext, AutocastCPU, m) {
  m.impl("forward", &forward_autocast<c10::DeviceType::CPU>);
}

TORCH_LIBRARY_IMPL(cwrnn_ext, AutocastCUDA, m) {
  m.impl("forward", &forward_autocast<c10::DeviceType::CUDA>);
}

}  // namespace cwrnn
