// Signatures and dtypes: the rules a model's declared inputs and outputs follow.
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "maas/types.h"
#include "test_util.h"

namespace maas {
namespace {

using ::testing::HasSubstr;

TEST(SignatureTest, ValidatesEveryRule) {
  ModelSignature good = testing::LinearSignature();
  EXPECT_TRUE(ValidateSignature(good).ok());

  struct Case {
    const char* what;
    ModelSignature signature;
    const char* message;
  };
  ModelSignature no_inputs = good;
  no_inputs.inputs.clear();
  ModelSignature no_outputs = good;
  no_outputs.outputs.clear();
  ModelSignature zero_dim = good;
  zero_dim.inputs[0].shape = {0};
  ModelSignature negative_dim = good;
  negative_dim.inputs[0].shape = {3, -2};
  ModelSignature duplicate = good;
  duplicate.inputs.push_back(duplicate.inputs[0]);
  ModelSignature unnamed = good;
  unnamed.outputs[0].name = "";
  ModelSignature bad_char = good;
  bad_char.inputs[0].name = "x y";
  ModelSignature complex = good;
  complex.inputs[0].dtype = c10::ScalarType::ComplexFloat;
  ModelSignature too_many_dims = good;
  too_many_dims.inputs[0].shape = std::vector<int64_t>(17, 1);
  for (const Case& c :
       {Case{"no inputs", no_inputs, "no inputs"}, Case{"no outputs", no_outputs, "no outputs"},
        Case{"zero dim", zero_dim, "[0]"}, Case{"negative dim", negative_dim, "[3, -2]"},
        Case{"duplicate", duplicate, "appears twice"}, Case{"unnamed", unnamed, "output 0"},
        Case{"bad char", bad_char, "'x y'"}, Case{"complex", complex, "supported: float32"},
        Case{"rank", too_many_dims, "17 dimensions"}}) {
    absl::Status s = ValidateSignature(c.signature);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.what;
    EXPECT_THAT(std::string(s.message()), HasSubstr(c.message)) << c.what;
  }
}

TEST(DtypeTest, NamesRoundTrip) {
  for (c10::ScalarType t : {c10::ScalarType::Float, c10::ScalarType::Double, c10::ScalarType::Half,
                            c10::ScalarType::BFloat16, c10::ScalarType::Byte, c10::ScalarType::Char,
                            c10::ScalarType::Short, c10::ScalarType::Int, c10::ScalarType::Long,
                            c10::ScalarType::Bool}) {
    EXPECT_EQ(*ParseDtype(DtypeName(t)), t);
    // The Open Inference Protocol's names too, as KServe and Triton users write them.
    EXPECT_EQ(*ParseDtype(std::string(DtypeDatatypeName(t))), t);
  }
  EXPECT_EQ(DtypeName(c10::ScalarType::Float), "float32");
  EXPECT_EQ(DtypeDatatypeName(c10::ScalarType::Float), "FP32");
  EXPECT_EQ(DtypeDatatypeName(c10::ScalarType::BFloat16), "BF16");
  EXPECT_TRUE(DtypeDatatypeName(c10::ScalarType::ComplexFloat).empty());
  const std::string unknown(ParseDtype("float").status().message());
  EXPECT_THAT(unknown, HasSubstr("float32"));
  EXPECT_THAT(unknown, HasSubstr("FP32"));
  EXPECT_FALSE(ParseDtype("fp32").ok());  // Names are exact.
}

}  // namespace
}  // namespace maas
