// ERPReports
