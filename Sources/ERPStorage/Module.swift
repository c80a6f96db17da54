// ERPStorage
