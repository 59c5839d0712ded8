"""notification-svc: receipts and answers by e-mail, SMS and WhatsApp, with proof of delivery."""
