#ifndef CMOSQUITTO_SHIM_H
#define CMOSQUITTO_SHIM_H
// libmosquitto 2.0.11. Only the `MQTT` module imports this.
#include <mosquitto.h>
#include <mqtt_protocol.h>
// eventfd(2), for waking the network thread's poll(2) (Glibc's Swift module lacks it).
#include <sys/eventfd.h>
#endif
