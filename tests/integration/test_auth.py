"""Authentication with Mosquitto-format password files, `meshmqd passwd`, and SIGHUP reload."""

import os
import signal
import unittest

from meshmq_harness import (MOSQUITTO_PASSWD, Broker, BrokerTestCase, SysWatcher, connack,
                            connack_rc, connect,
                            meshmq_only, mosquitto_passwd, passwd_tool, run_tool,
                            sha512_password_line, unique_id, wait_for)

REFUSED = (4, 5)  # bad user name or password / not authorised (Mosquitto answers 5)


def read_users(path):
    with open(path) as f:
        return [line.split(":", 1)[0] for line in f.read().splitlines() if line.strip()]


class PasswordFileTest(BrokerTestCase):

    broker_flags = {"allow_anonymous": False, "sys_interval": "1s"}

    @classmethod
    def prepare_broker(cls, broker):
        path = broker.path("passwords")
        mosquitto_passwd(path, "alice", "alice-pw", create=True)  # default: $7$ (PBKDF2)
        mosquitto_passwd(path, "bob", "bob pw with spaces")
        result = run_tool([MOSQUITTO_PASSWD, "-H", "sha512", "-b", path, "dave", "dave-pw"])
        assert result.returncode == 0, result.stderr
        with open(path, "a") as f:
            f.write(sha512_password_line("carol", "carol-pw") + "\n")
        with open(path) as f:
            cls.file_text = f.read()
        broker.flags["password_file"] = path

    def test_file_holds_the_expected_hash_kinds(self):
        lines = dict(line.split(":", 1) for line in self.file_text.splitlines())
        self.assertTrue(lines["alice"].startswith("$7$"), lines["alice"])
        self.assertTrue(lines["dave"].startswith("$6$"), lines["dave"])
        self.assertTrue(lines["carol"].startswith("$6$"), lines["carol"])

    def test_pbkdf2_users_from_mosquitto_passwd_accepted(self):
        self.assertEqual(connack_rc(self.port, username="alice", password="alice-pw"), 0)
        self.assertEqual(connack_rc(self.port, username="bob", password="bob pw with spaces"), 0)
        c = self.client(username="alice", password="alice-pw")
        self.assertEqual(c.subscribe(self.topic(), 1), [1])

    def test_sha512_line_computed_here_accepted(self):
        self.assertEqual(connack_rc(self.port, username="carol", password="carol-pw"), 0)

    def test_sha512_line_from_mosquitto_passwd_accepted(self):
        self.assertEqual(connack_rc(self.port, username="dave", password="dave-pw"), 0)

    def test_wrong_passwords_refused(self):
        for user, password in (("alice", "bob pw with spaces"), ("bob", "bob"),
                               ("carol", "Carol-pw"), ("dave", ""), ("mallory", "alice-pw")):
            with self.subTest(user=user, password=password):
                c = self.raw()
                c.send(connect(unique_id(), username=user, password=password))
                got = c.read_packet()
                self.assertIn(got, [connack(0, rc) for rc in REFUSED])
                c.expect_closed()

    def test_user_without_password_refused(self):
        self.assertIn(connack_rc(self.port, username="alice"), REFUSED)

    def test_anonymous_refused_with_rc5(self):
        self.assertEqual(connack_rc(self.port), 5)

    @meshmq_only("meshmq's $SYS/broker/counters/auth_failures")
    def test_auth_failures_counted(self):
        sys = SysWatcher(self, username="alice", password="alice-pw")
        before = sys.counter_now("auth_failures")
        self.assertIn(connack_rc(self.port, username="alice", password="nope"), REFUSED)
        self.assertEqual(connack_rc(self.port), 5)
        sys.wait_counter_at_least("auth_failures", before + 2)


class PasswdToolTest(unittest.TestCase):
    """`meshmqd passwd` (mosquitto_passwd in reference mode): same command line, same files."""

    def setUp(self):
        self.broker = Broker(allow_anonymous=False)
        self.addCleanup(self.broker.stop)
        self.file = self.broker.path("passwords")

    def tool(self, *args, stdin=None):
        result = run_tool(passwd_tool() + list(args), stdin_text=stdin)
        self.assertEqual(result.returncode, 0, "%s: %s" % (args, result.stderr.decode()))
        return result

    def test_create_add_update_delete(self):
        self.tool("-c", "-b", self.file, "alice", "first")
        self.tool("-b", self.file, "bob", "bob-pw")
        # Password from stdin (not a tty). mosquitto_passwd asks twice; meshmqd reads one line.
        self.tool(self.file, "erin", stdin="erin-pw\nerin-pw\n")
        self.tool("-b", self.file, "alice", "second")  # update keeps one entry per user
        self.tool("-D", self.file, "bob")
        self.assertEqual(sorted(read_users(self.file)), ["alice", "erin"])
        self.broker.flags["password_file"] = self.file
        self.broker.start()
        port = self.broker.port
        self.assertEqual(connack_rc(port, username="alice", password="second"), 0)
        self.assertEqual(connack_rc(port, username="erin", password="erin-pw"), 0)
        self.assertIn(connack_rc(port, username="alice", password="first"), REFUSED)
        self.assertIn(connack_rc(port, username="bob", password="bob-pw"), REFUSED)

    def test_create_flag_overwrites_existing_file(self):
        self.tool("-c", "-b", self.file, "alice", "a")
        self.tool("-c", "-b", self.file, "zoe", "z")
        self.assertEqual(read_users(self.file), ["zoe"])

    def test_hashes_are_salted(self):
        self.tool("-c", "-b", self.file, "u1", "same")
        self.tool("-b", self.file, "u2", "same")
        with open(self.file) as f:
            hashes = [line.split(":", 1)[1] for line in f.read().splitlines()]
        self.assertEqual(len(hashes), 2)
        self.assertNotEqual(hashes[0], hashes[1])
        self.assertNotIn("same", "".join(hashes))

    def test_extends_a_mosquitto_passwd_file(self):
        mosquitto_passwd(self.file, "old", "old-pw", create=True)
        with open(self.file, "a") as f:
            f.write(sha512_password_line("legacy", "legacy-pw") + "\n")
        self.tool("-b", self.file, "new", "new-pw")
        self.broker.flags["password_file"] = self.file
        self.broker.start()
        for user in ("old", "legacy", "new"):
            with self.subTest(user=user):
                self.assertEqual(connack_rc(self.broker.port, username=user,
                                            password=user + "-pw"), 0)

    @meshmq_only("mosquitto_passwd needs -c to create a file; meshmqd passwd creates it")
    def test_creates_missing_file_without_c(self):
        self.assertFalse(os.path.exists(self.file))
        self.tool("-b", self.file, "alice", "pw")
        self.assertEqual(read_users(self.file), ["alice"])

    @meshmq_only("checks meshmqd passwd's output against the Mosquitto broker")
    def test_file_written_by_meshmqd_works_with_mosquitto(self):
        self.tool("-c", "-b", self.file, "alice", "alice-pw")
        self.tool(self.file, "bob", stdin="bob-pw\n")
        mosquitto = Broker(kind="mosquitto", allow_anonymous=False, password_file=self.file)
        self.addCleanup(mosquitto.stop)
        mosquitto.start()
        self.assertEqual(connack_rc(mosquitto.port, username="alice", password="alice-pw"), 0)
        self.assertEqual(connack_rc(mosquitto.port, username="bob", password="bob-pw"), 0)
        self.assertIn(connack_rc(mosquitto.port, username="alice", password="bob-pw"), REFUSED)


class SighupReloadPasswordTest(BrokerTestCase):

    broker_flags = {"allow_anonymous": False}

    @classmethod
    def prepare_broker(cls, broker):
        cls.file = broker.path("passwords")
        mosquitto_passwd(cls.file, "alice", "alice-pw", create=True)
        broker.flags["password_file"] = cls.file

    def test_sighup_reloads_password_file(self):
        port = self.port
        self.assertIn(connack_rc(port, username="newbie", password="newbie-pw"), REFUSED)

        result = run_tool(passwd_tool() + ["-b", self.file, "newbie", "newbie-pw"])
        self.assertEqual(result.returncode, 0, result.stderr)
        result = run_tool(passwd_tool() + ["-b", self.file, "alice", "changed"])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.broker.signal(signal.SIGHUP)

        wait_for(lambda: connack_rc(port, username="newbie", password="newbie-pw") == 0,
                 interval=0.05, message="new user not accepted after SIGHUP")
        self.assertEqual(connack_rc(port, username="alice", password="changed"), 0)
        self.assertIn(connack_rc(port, username="alice", password="alice-pw"), REFUSED)
        self.assertTrue(self.broker.running())


if __name__ == "__main__":
    unittest.main()
