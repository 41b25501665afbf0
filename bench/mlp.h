// The MLP 512-1024-1024-10 that the benchmarks share, built in C++ with random weights.
#ifndef MAAS_BENCH_MLP_H_
#define MAAS_BENCH_MLP_H_

#include <torch/script.h>

namespace maas::bench {

inline torch::jit::Module BuildMlp() {
  torch::jit::Module m("Mlp");
  m.register_parameter("w1", torch::randn({1024, 512}) * 0.04, false);
  m.register_parameter("b1", torch::zeros({1024}), false);
  m.register_parameter("w2", torch::randn({1024, 1024}) * 0.03, false);
  m.register_parameter("b2", torch::zeros({1024}), false);
  m.register_parameter("w3", torch::randn({10, 1024}) * 0.03, false);
  m.register_parameter("b3", torch::zeros({10}), false);
  m.define(R"(
def forward(self, x: Tensor) -> Tensor:
  x = torch.relu(torch.linear(x, self.w1, self.b1))
  x = torch.relu(torch.linear(x, self.w2, self.b2))
  return torch.linear(x, self.w3, self.b3)
)");
  return m;
}

}  // namespace maas::bench

#endif  // MAAS_BENCH_MLP_H_
