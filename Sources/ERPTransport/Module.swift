// ERPTransport
