#ifndef CMOSQUITTO_SHIM_H
#define CMOSQUITTO_SHIM_H
// libmosquitto 2.0.11. Only the `MQTT` module imports this.
#include <mosquitto.h>
#include <mqtt_protocol.h>
#endif
