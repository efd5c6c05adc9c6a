"""Outside services behind small clients: LINE Login now; LINE Messaging, mail and the geocoder
next. They speak HTTP (or SMTP/IMAP) and return plain values; they import no service, touch no
database and keep no secret in a log: the services that use them pass in what to record."""
