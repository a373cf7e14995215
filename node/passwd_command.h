// `meshmqd passwd`: mosquitto_passwd's job, for users who have no Mosquitto installed.
#ifndef MESHMQ_NODE_PASSWD_COMMAND_H_
#define MESHMQ_NODE_PASSWD_COMMAND_H_

#include <string>
#include <vector>

namespace meshmq {

// args: [-c] [-b] [-D] FILE USER [PASSWORD]. Returns the process exit code.
//   -c  create (or empty) FILE first, as mosquitto_passwd -c does
//   -b  batch: PASSWORD is on the command line
//   -D  delete USER
// Without -b the password is read from the terminal (twice, not echoed) or, if stdin is not a
// terminal, as one line from stdin.
int RunPasswdCommand(const std::vector<std::string>& args);

}  // namespace meshmq

#endif  // MESHMQ_NODE_PASSWD_COMMAND_H_
