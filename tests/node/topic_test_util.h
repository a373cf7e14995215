// Random topic names and filters for checking the topic trie and the retained store against
// TopicMatches.
#ifndef MESHMQ_TESTS_NODE_TOPIC_TEST_UTIL_H_
#define MESHMQ_TESTS_NODE_TOPIC_TEST_UTIL_H_

#include <random>
#include <span>
#include <string>

namespace meshmq::test_util {

// A random topic name (filter=false) or filter (filter=true) of 1 to 4 levels drawn from `levels`;
// a filter has '+' in about one level in six and '#' as its last level about as often. Never the
// empty string, which is neither a name nor a filter. Deterministic for a given rng seed.
inline std::string RandomTopic(std::mt19937& rng, bool filter,
                               std::span<const char* const> levels) {
  std::uniform_int_distribution<int> depth(1, 4);
  std::uniform_int_distribution<int> pick(0, static_cast<int>(levels.size()) - 1);
  std::uniform_int_distribution<int> wildcard(0, 5);
  std::string out;
  while (out.empty()) {  // a single empty level is "": draw again
    const int count = depth(rng);
    for (int i = 0; i < count; ++i) {
      if (i > 0) out += '/';
      const int w = filter ? wildcard(rng) : 5;
      if (w == 0) {
        out += '+';
      } else if (w == 1 && i == count - 1) {
        out += '#';
      } else {
        out += levels[pick(rng)];
      }
    }
  }
  return out;
}

}  // namespace meshmq::test_util

#endif  // MESHMQ_TESTS_NODE_TOPIC_TEST_UTIL_H_
