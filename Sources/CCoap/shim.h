#ifndef CCOAP_SHIM_H
#define CCOAP_SHIM_H
// libcoap 4.3.1 (Debian 12), openssl flavour. Only the `CoAP` module imports this.
#include <coap3/coap.h>
#include <openssl/ssl.h>

// Macros that do not import into Swift, re-exported as constants or inline functions.
static const uint32_t CCOAP_IO_NO_WAIT = COAP_IO_NO_WAIT;
// coap_log_t is an int with syslog values in 4.3.1 (an enum from 4.3.2 on): keep them here.
static const int CCOAP_LOG_EMERG = LOG_EMERG;
static const int CCOAP_LOG_ERR = LOG_ERR;
static const int CCOAP_LOG_WARNING = LOG_WARNING;
static const int CCOAP_LOG_NOTICE = LOG_NOTICE;
static const int CCOAP_LOG_INFO = LOG_INFO;
static const int CCOAP_LOG_DEBUG = LOG_DEBUG;

static inline unsigned int ccoap_response_class(unsigned int code) { return (code >> 5) & 0x7; }
static inline unsigned int ccoap_response_detail(unsigned int code) { return code & 0x1f; }

// Counting the DTLS application-data records a client session reads.
//
// libcoap 4.3.1 drops a retransmitted confirmable response (the copy a server sends when our
// acknowledgement was lost) without acknowledging it again (libcoap issue 1306, fixed in 4.3.5),
// and tells the application nothing. Each CoAP message travels in one DTLS record, so a record
// that reached libcoap without reaching any of our handlers is such a drop (or another message
// libcoap consumed itself); the client then acknowledges the last confirmable response again.
// OpenSSL calls a session's message callback with the header of every record it reads
// (content type SSL3_RT_HEADER, the record's own type in its first byte), on the thread that
// called SSL_read: inside coap_io_process, on the libcoap queue.
static void ccoap_record_counter(int write_p, int version, int content_type, const void *buf, size_t len,
                                 SSL *ssl, void *arg) {
  (void)version;
  (void)ssl;
  if (write_p == 0 && content_type == SSL3_RT_HEADER && buf != NULL && len > 0 && arg != NULL &&
      ((const unsigned char *)buf)[0] == SSL3_RT_APPLICATION_DATA) {
    *(unsigned long *)arg += 1;
  }
}

// Starts (counter != NULL) or stops counting the records `session` reads into `*counter`.
// Returns 0 if the session has no OpenSSL object (not DTLS, or another TLS library).
static inline int ccoap_count_records(coap_session_t *session, unsigned long *counter) {
  coap_tls_library_t library = COAP_TLS_LIBRARY_NOTLS;
  SSL *ssl = (SSL *)coap_session_get_tls(session, &library);
  if (ssl == NULL || library != COAP_TLS_LIBRARY_OPENSSL) return 0;
  SSL_set_msg_callback_arg(ssl, counter);
  SSL_set_msg_callback(ssl, counter != NULL ? ccoap_record_counter : NULL);
  return 1;
}

// Acknowledges the confirmable message with message ID `mid` again (what libcoap 4.3.5 does for
// a duplicate): coap_send_ack only reads the type and the message ID of the PDU it is given.
static inline coap_mid_t ccoap_acknowledge(coap_session_t *session, coap_mid_t mid) {
  coap_pdu_t *copy = coap_pdu_init(COAP_MESSAGE_CON, COAP_RESPONSE_CODE(205), mid, 16);
  if (copy == NULL) return COAP_INVALID_MID;
  coap_mid_t sent = coap_send_ack(session, copy);
  coap_delete_pdu(copy);
  return sent;
}
#endif
