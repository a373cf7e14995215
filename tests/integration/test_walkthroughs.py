"""The six classic walk-throughs, with mosquitto_pub / mosquitto_sub as a README shows them
(plus -h/-p, since the test broker listens on a free port)."""

import signal
import unittest

from meshmq_harness import BrokerTestCase, wait_for


class WalkthroughTest(BrokerTestCase):

    def test_1_connect(self):
        # Terminal 1: mosquitto_sub -t test -C 1   /  Terminal 2: mosquitto_pub -t test -m hello
        topic = self.topic("test")
        sub = self.mosquitto_sub("-t", topic, "-C", "1")

        def delivered():
            if sub.proc.poll() is None:
                self.mosquitto_pub("-t", topic, "-m", "hello")
            return sub.proc.poll() is not None or sub.lines()
        wait_for(delivered, timeout=10, interval=0.1)
        self.assertEqual(sub.wait_exit(), 0)
        self.assertEqual(sub.lines(), ["hello"])

    def test_2_publish(self):
        # mosquitto_pub -t sensors/temperature -m 21.5 ; seen by any subscriber
        topic = self.topic("sensors/temperature")
        watcher = self.client()
        watcher.subscribe(topic, 0)
        self.mosquitto_pub("-t", topic, "-m", "21.5")
        self.assertEqual(watcher.wait_message(topic).payload, b"21.5")

    def test_3_subscribe_with_wildcard(self):
        # mosquitto_sub -t 'sensors/#' -v
        base = self.topic("sensors")
        sub = self.mosquitto_sub("-t", base + "/#", "-v")
        self.wait_subscribed(sub, base + "/probe")
        self.mosquitto_pub("-t", base + "/temperature", "-m", "21.5", "-q", "1")
        self.mosquitto_pub("-t", self.topic("elsewhere/temperature"), "-m", "no", "-q", "1")
        self.mosquitto_pub("-t", base + "/room1/humidity", "-m", "40", "-q", "1")
        sub.wait_line(base + "/room1/humidity 40")
        lines = [line for line in sub.lines() if "probe" not in line]
        self.assertEqual(lines, [base + "/temperature 21.5", base + "/room1/humidity 40"])

    def test_4_qos_levels(self):
        # mosquitto_sub -t qos/test -q 2 -F '%q %p'  /  mosquitto_pub -t qos/test -q N -m ...
        topic = self.topic("qos/test")
        sub = self.mosquitto_sub("-t", topic, "-q", "2", "-F", "%q %p")
        self.wait_subscribed(sub, topic)
        for qos in ("0", "1", "2"):
            self.mosquitto_pub("-t", topic, "-q", qos, "-m", "at qos " + qos)
        sub.wait_line("2 at qos 2")
        sub.wait_line("1 at qos 1")
        sub.wait_line("0 at qos 0")
        lines = [line for line in sub.lines() if "probe" not in line]
        self.assertEqual(sorted(lines), ["0 at qos 0", "1 at qos 1", "2 at qos 2"])

    def test_5_retained_message(self):
        # mosquitto_pub -t status/door -m open -r ; later: mosquitto_sub -t status/door -C 1 -v
        topic = self.topic("status/door")
        self.mosquitto_pub("-t", topic, "-m", "open", "-r")
        sub = self.mosquitto_sub("-t", topic, "-C", "1", "-v")
        self.assertEqual(sub.wait_exit(), 0)
        self.assertEqual(sub.lines(), [topic + " open"])
        # mosquitto_pub -t status/door -r -n clears it
        self.mosquitto_pub("-t", topic, "-r", "-n")
        late = self.client()
        late.subscribe(topic, 0)
        self.client().publish(topic, b"live", qos=1)
        late.wait_message(topic, b"live")
        self.assertEqual(late.payloads(topic), [b"live"])

    def test_6_last_will(self):
        # Terminal 1: mosquitto_sub -t 'clients/#' -v
        # Terminal 2: mosquitto_sub -t lights/kitchen --will-topic clients/kitchen
        #             --will-payload offline ; then it dies (kill -9)
        base = self.topic("clients")
        observer = self.mosquitto_sub("-t", base + "/#", "-v")
        self.wait_subscribed(observer, base + "/probe")
        lights = self.topic("lights/kitchen")
        dying = self.mosquitto_sub("-t", lights, "--will-topic", base + "/kitchen",
                         "--will-payload", "offline")
        self.wait_subscribed(dying, lights)  # it is connected (its will is registered)
        dying.proc.send_signal(signal.SIGKILL)
        dying.wait_exit()
        observer.wait_line(base + "/kitchen offline")


if __name__ == "__main__":
    unittest.main()
