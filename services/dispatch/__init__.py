"""Dispatch (災害出動支援): mail sources, the mail intake, incidents and the メール受信ログ."""
