// Aligned text tables for meshmqctl's human output: a header row, then one row per item,
// columns left-aligned and two spaces apart, no trailing spaces. Widths count UTF-8 characters,
// not bytes, so client ids and topics in any script line up.
#ifndef MESHMQ_NODE_ADMIN_TABLE_H_
#define MESHMQ_NODE_ADMIN_TABLE_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace meshmq::admin {

class Table {
 public:
  explicit Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}

  // Missing cells are empty; extra ones are an error of the caller and dropped.
  void AddRow(std::vector<std::string> cells);
  size_t rows() const { return rows_.size(); }
  // The table, every line ending in '\n'.
  std::string Render() const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

// `key: value` lines with the keys padded to one width ("client id:  c1").
std::string RenderFields(const std::vector<std::pair<std::string, std::string>>& fields);

// `text` made safe for a terminal cell: control characters, invalid UTF-8 and backslashes as
// \xNN escapes (\\ for a backslash), and cut to `max_chars` characters with "..." if longer
// (0: no limit).
std::string Printable(std::string_view text, size_t max_chars = 0);

// Characters of `text` as a terminal shows them (UTF-8 lead bytes counted).
size_t DisplayWidth(std::string_view text);

}  // namespace meshmq::admin

#endif  // MESHMQ_NODE_ADMIN_TABLE_H_
