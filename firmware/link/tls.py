# TLS for the MQTT session: the broker's certificate is checked against the
# utility's CA carried in the provisioning (broker_ca_hex, DER in hex), and
# the broker's host name against the certificate (Session passes it).
def context(ca_hex):
    """An ssl.SSLContext that requires the broker's certificate, or None
    without a CA (a plain TCP link, for a broker on a private APN)."""
    if not ca_hex:
        return None
    import ssl
    import binascii
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=binascii.unhexlify(ca_hex))
    return ctx
