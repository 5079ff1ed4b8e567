package store

// Starter is the commented config written when `camgate serve` finds no
// file. Its example rules are the seed guide's Hikvision DVR (HTTP 8082,
// RTSP 554, HTTPS 443, server 8000) and start disabled, so nothing is
// exposed until the owner has put in the DVR's address.
const Starter = `# camgate configuration: your port-forwarding table.
#
# Each rule is one row of a router's "Port Forwarding / Virtual Server" menu:
#   external_port  the port people connect to from outside (a number or "10000-10009")
#   internal_ip    the LAN address of the camera / DVR / NVR (IPv4, IPv6 or host name)
#   internal_port  the device's port (defaults to external_port)
#   protocol       tcp, udp or both
#   description    free text
#   enabled        true or false
#   allow / deny   optional lists of source addresses (CIDR) that may / may not connect
#
# To start: set internal_ip to your DVR's address, set enabled: true on the rules
# you want, save, then run "camgate validate --config <this file>" and reload
# (kill -HUP <pid>, or run serve with --watch). Reference: docs/CONFIG.md
version: 1
listen_address: 0.0.0.0

rules:
  # camgate serves HTTPS itself in front of the DVR's HTTP port, so its
  # brute-force guard and exploit filter can read every request.
  - name: dvr-https
    description: DVR web page and app access over HTTPS served by camgate
    protocol: tcp
    external_port: 443
    internal_ip: 192.168.1.64
    internal_port: 8082
    tls: terminate
    guard: auth
    enabled: false

  - name: dvr-rtsp
    description: DVR live video (RTSP); play rtsp://<public-ip>:554/Streaming/Channels/101
    protocol: tcp
    external_port: 554
    internal_ip: 192.168.1.64
    internal_port: 554
    guard: auth
    enabled: false

  - name: dvr-web
    description: DVR web page over plain HTTP (prefer dvr-https)
    protocol: tcp
    external_port: 8082
    internal_ip: 192.168.1.64
    internal_port: 8082
    enabled: false

  # The server/SDK port 8000 is used by iVMS-4200 and the mobile app, and is a
  # frequent attack target. Only enable it if you need those apps, and then
  # restrict it with "allow:".
  - name: dvr-server
    description: DVR server/SDK port for iVMS-4200 and the app
    protocol: tcp
    external_port: 8000
    internal_ip: 192.168.1.64
    internal_port: 8000
    enabled: false
    allow: [192.0.2.0/24]
`
