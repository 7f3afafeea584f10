namespace concertmaster.test;

using { managed } from '@sap/cds/common';

// The fields of S/4HANA's A_BusinessPartner the connector tests write.
entity BusinessPartners : managed {
  key BusinessPartner         : String(10);
      BusinessPartnerCategory : String(1) @mandatory @assert.range enum { Person = '1'; Organization = '2' };
      BusinessPartnerFullName : String(81);
      FirstName               : String(40);
      LastName                : String(40);
      OrganizationBPName1     : String(40);
      SearchTerm1             : String(20);
      EmailAddress            : String(241) @assert.format: '^[^@\s]+@[^@\s]+$';
      Country                 : String(3);
      YY1_ConcertMasterKey    : String(80);
}
