#include "node/admin/table.h"

#include <algorithm>

#include "absl/strings/str_format.h"

namespace meshmq::admin {
namespace {

// Length of the valid UTF-8 sequence at `text[i]` (0: not valid there).
size_t Utf8Length(std::string_view text, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  size_t length = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3
                                  : (lead >> 3) == 0x1E ? 4 : 0;
  if (length == 0 || i + length > text.size()) return 0;
  for (size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
  }
  return length;
}

void AppendPadded(std::string* line, const std::string& cell, size_t width) {
  line->append(cell);
  line->append(width - std::min(width, DisplayWidth(cell)), ' ');
}

}  // namespace

size_t DisplayWidth(std::string_view text) {
  size_t width = 0;
  for (unsigned char c : text) {
    if ((c & 0xC0) != 0x80) ++width;
  }
  return width;
}

void Table::AddRow(std::vector<std::string> cells) {
  cells.resize(headers_.size());
  rows_.push_back(std::move(cells));
}

std::string Table::Render() const {
  std::vector<size_t> widths(headers_.size());
  for (size_t c = 0; c < headers_.size(); ++c) widths[c] = DisplayWidth(headers_[c]);
  for (const auto& row : rows_) {
    for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], DisplayWidth(row[c]));
  }
  std::string out;
  auto render_row = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      if (c > 0) line.append("  ");
      AppendPadded(&line, row[c], widths[c]);
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out.append(line);
    out.push_back('\n');
  };
  render_row(headers_);
  for (const auto& row : rows_) render_row(row);
  return out;
}

std::string RenderFields(const std::vector<std::pair<std::string, std::string>>& fields) {
  size_t width = 0;
  for (const auto& [key, value] : fields) width = std::max(width, DisplayWidth(key) + 1);
  std::string out;
  for (const auto& [key, value] : fields) {
    std::string line;
    AppendPadded(&line, key + ":", width);
    line.append("  ");
    line.append(value);
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out.append(line);
    out.push_back('\n');
  }
  return out;
}

std::string Printable(std::string_view text, size_t max_chars) {
  std::string out;
  size_t chars = 0;
  for (size_t i = 0; i < text.size();) {
    if (max_chars > 0 && chars == max_chars) {
      out.append("...");
      break;
    }
    const unsigned char c = static_cast<unsigned char>(text[i]);
    const size_t length = Utf8Length(text, i);
    if (c == '\\') {
      out.append("\\\\");
      i += 1;
    } else if (length == 0 || c < 0x20 || c == 0x7F) {
      out.append(absl::StrFormat("\\x%02x", c));
      i += 1;
    } else {
      out.append(text.substr(i, length));
      i += length;
    }
    ++chars;
  }
  return out;
}

}  // namespace meshmq::admin
