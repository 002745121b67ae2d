// Shared pieces of the `kiln` command-line tool: exit codes, error reporting, and parsers for
// the option values the subcommands take (shapes, profiles, KEY=VALUE pairs).
//
// Exit codes (DESIGN.md, "Surfaces"): 0 ok, 1 mismatch or failed check, 2 bad usage or bad
// input, 3 unsupported model. Every parser returns kInvalidArgument with a message that names the
// option and shows the expected form.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>

#include "kiln/builder.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitMismatch = 1;
inline constexpr int kExitBadInput = 2;
inline constexpr int kExitUnsupported = 3;

// kMismatch -> 1, kUnsupported -> 3, everything else -> 2 (ok -> 0).
int exit_code_for(const Status& status);

// Prints "kiln: error: <message>" to stderr.
void print_error(std::string_view message);
// Prints the status's message as above and returns exit_code_for(status).
int report_error(const Status& status);

// "1x3x224x224" -> {1, 3, 224, 224}. Each dim is a non-negative decimal integer below 2^62.
Result<Dims> parse_dims(std::string_view text);

// A --shape value: "NAME:MIN:OPT:MAX" or "NAME:DIMS" (min = opt = max). NAME may itself contain
// ':' (as in "input:0"); the trailing one or three fields that parse as dims are the shapes.
Result<ShapeProfile> parse_shape_spec(std::string_view text);

// {"code": "<status_code_name>", "message": ..., "exit_code": N}, for --json output.
nlohmann::json status_json(const Status& status);
// Prints `value` to stdout, indented, with a trailing newline.
void print_json(const nlohmann::json& value);

// "KEY=VALUE" split at the first '='; KEY must be non-empty. `option` names the flag in errors.
Result<std::pair<std::string, std::string>> parse_key_value(std::string_view text,
                                                            std::string_view option);

// "[1, 3, 224, 224]" style for dims, and "batch x 3" style is left to callers.
std::string format_dims(const Dims& dims);
// A number with 3 significant digits, as printed in PASS/FAIL lines: "1.19e-07", "0.5", "inf".
std::string format_number(double value);
// A duration in milliseconds with sensible precision: "0.123 ms", "12.3 ms", "1234 ms".
std::string format_ms(double ms);
// "1.2 MiB", "640 B".
std::string format_bytes(uint64_t bytes);

// Replaces every character outside [A-Za-z0-9._-] with '_' so a binding name can be a file name;
// an empty or dot-only name becomes "_".
std::string safe_file_name(std::string_view name);

}  // namespace kiln::cli
