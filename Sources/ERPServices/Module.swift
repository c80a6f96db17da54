// ERPServices
