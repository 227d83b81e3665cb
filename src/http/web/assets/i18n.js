// French by default, English on request: one dictionary per language.
// The choice is kept in memory only (nothing stored in the browser).

const fr = {
  'app.title': 'MedicalPro', 'lang.switch': 'English', 'lang.other': 'en',
  'nav.agenda': 'Agenda', 'nav.patients': 'Patients', 'nav.documents': 'Devis et factures',
  'nav.admin': 'Administration', 'nav.logout': 'Se déconnecter', 'nav.main': 'Navigation principale',
  'auth.login': 'Connexion', 'auth.register': 'Créer un cabinet', 'auth.email': 'E-mail',
  'auth.password': 'Mot de passe', 'auth.submit': 'Se connecter', 'auth.create': 'Créer le cabinet',
  'auth.toRegister': 'Nouveau cabinet ? Créer un compte', 'auth.toLogin': 'Déjà inscrit ? Se connecter',
  'auth.clinicName': 'Nom du cabinet', 'auth.firstName': 'Prénom', 'auth.lastName': 'Nom',
  'auth.phone': 'Téléphone', 'auth.passwordHint': 'Au moins 8 caractères.',
  'err.invalid_credentials': 'E-mail ou mot de passe incorrect.',
  'err.too_many_attempts': 'Trop de tentatives. Réessayez dans {wait}.',
  'err.clinic_inactive': 'Ce cabinet est suspendu ou fermé : contactez l’administrateur de la plateforme.',
  'err.email_taken': 'Un compte existe déjà avec cet e-mail.',
  'err.registration_closed': 'Les inscriptions sont fermées : l’opérateur crée les cabinets.',
  'err.forbidden': 'Votre rôle ne permet pas cette action.',
  'err.not_found': 'Introuvable (supprimé ?).',
  'err.conflict': 'Conflit : {message}', 'err.network': 'Le serveur ne répond pas. Vérifiez la connexion.',
  'err.validation_failed': 'Certains champs sont à corriger.',
  'err.server_busy': 'Le serveur est occupé, réessayez dans un instant.',
  'err.clinic_unavailable': 'La base du cabinet est momentanément indisponible, réessayez.',
  'err.generic': 'Erreur : {message}',
  'session.idle': 'Session fermée après {minutes} minutes d’inactivité.',
  'session.expired': 'Session expirée : reconnectez-vous.', 'session.ended': 'Vous êtes déconnecté.',
  'common.save': 'Enregistrer', 'common.cancel': 'Annuler', 'common.edit': 'Modifier',
  'common.delete': 'Supprimer', 'common.add': 'Ajouter', 'common.create': 'Créer', 'common.close': 'Fermer',
  'common.none': 'Aucun élément.', 'common.loading': 'Chargement…', 'common.saved': 'Enregistré.',
  'common.search': 'Rechercher', 'common.all': 'Tous', 'common.status': 'Statut', 'common.actions': 'Actions',
  'common.yes': 'Oui', 'common.no': 'Non', 'common.previous': 'Précédent', 'common.next': 'Suivant',
  'common.today': 'Aujourd’hui', 'common.print': 'Imprimer', 'common.back': 'Retour',
  'patients.title': 'Patients', 'patients.search': 'Rechercher un patient (nom, e-mail, téléphone)',
  'patients.new': 'Nouveau patient', 'patients.count': '{n} patient(s)', 'patients.edit': 'Modifier le patient',
  'p.firstName': 'Prénom', 'p.lastName': 'Nom', 'p.birthDate': 'Date de naissance', 'p.gender': 'Sexe',
  'p.email': 'E-mail', 'p.phone': 'Téléphone', 'p.line1': 'Adresse', 'p.line2': 'Complément',
  'p.city': 'Ville', 'p.postalCode': 'Code postal', 'p.country': 'Pays', 'p.nationalId': 'N° de sécurité sociale (NIR)',
  'p.notes': 'Notes', 'p.status': 'Statut',
  'gender.male': 'Homme', 'gender.female': 'Femme', 'gender.other': 'Autre', 'gender.unknown': 'Non précisé',
  'pstatus.active': 'Actif', 'pstatus.inactive': 'Inactif', 'pstatus.deceased': 'Décédé',
  'patient.appointments': 'Rendez-vous', 'patient.records': 'Dossier médical', 'patient.consents': 'Consentements',
  'patient.documents': 'Devis et factures', 'patient.gdpr': 'RGPD', 'patient.export': 'Exporter les données (fichier JSON)',
  'patient.erase': 'Effacer les données du patient', 'patient.eraseConfirm': 'Effacer définitivement les données identifiantes de ce patient ?',
  'patient.erased': 'Données du patient effacées.',
  'patient.retention': 'Effacement impossible : la loi oblige le cabinet à conserver ces éléments :',
  'patient.retentionItem': '{kind} : à conserver jusqu’au {until} ({rule})',
  'patient.exported': 'Export téléchargé.',
  'kind.medical_record': 'Dossier médical', 'kind.invoice': 'Facture', 'kind.credit_note': 'Avoir',
  'rec.type': 'Type', 'rec.title': 'Titre', 'rec.content': 'Contenu', 'rec.recordedAt': 'Date', 'rec.add': 'Ajouter au dossier',
  'rtype.consultation': 'Consultation', 'rtype.diagnosis': 'Diagnostic', 'rtype.prescription': 'Ordonnance',
  'rtype.allergy': 'Allergie', 'rtype.note': 'Note', 'rtype.vaccination': 'Vaccination', 'rtype.lab_result': 'Résultat d’analyse',
  'consent.template': 'Modèle', 'consent.add': 'Demander un consentement', 'consent.sign': 'Marquer signé', 'consent.revoke': 'Révoquer',
  'cstatus.pending': 'En attente', 'cstatus.signed': 'Signé', 'cstatus.revoked': 'Révoqué',
  'agenda.title': 'Agenda', 'agenda.day': 'Jour', 'agenda.week': 'Semaine', 'agenda.practitioner': 'Praticien',
  'agenda.allPractitioners': 'Tout le cabinet', 'agenda.book': 'Nouveau rendez-vous', 'agenda.hint': 'Choisissez un créneau libre (+) pour prendre rendez-vous, ou un rendez-vous pour le confirmer, l’annuler ou le déplacer. Glissez un rendez-vous vers un autre créneau pour le déplacer, son bord inférieur pour changer sa durée.',
  'agenda.resizeHandle': 'Glisser pour changer la durée', 'agenda.patient': 'Patient',
  'agenda.duration': 'Durée (minutes)', 'agenda.reason': 'Motif', 'agenda.bookAt': 'Rendez-vous le {when}',
  'agenda.overlap': 'Créneau déjà pris : {who} a un autre rendez-vous qui chevauche celui-ci.',
  'agenda.move': 'Déplacer', 'agenda.movePickButton': 'Déplacer vers un créneau…', 'agenda.movePick': 'Choisissez le nouveau créneau dans l’agenda (+).', 'agenda.moveTo': 'Nouvelle date et heure', 'agenda.confirm': 'Confirmer',
  'agenda.cancelAppt': 'Annuler le RDV', 'agenda.noShow': 'Absent', 'agenda.complete': 'Terminé',
  'agenda.noPractitioner': 'Aucun praticien : ajoutez-en un dans Administration.',
  'agenda.pickPatient': 'Tapez un nom puis choisissez le patient.', 'agenda.slot': 'Créneau libre {time}',
  'agenda.resize': 'Changer la durée', 'agenda.length': 'Durée : {n} min',
  'items.title': 'Actes', 'items.none': 'Aucun acte.', 'items.act': 'Acte du catalogue', 'items.quantity': 'Quantité',
  'items.add': 'Ajouter l’acte', 'items.remove': 'Retirer {what}', 'items.total': 'Total HT : {total}',
  'items.noCatalogue': 'Catalogue vide : ajoutez des actes dans Administration.', 'items.quote': 'Créer un devis avec ces actes',
  'astatus.scheduled': 'Prévu', 'astatus.confirmed': 'Confirmé', 'astatus.completed': 'Terminé',
  'astatus.cancelled': 'Annulé', 'astatus.no_show': 'Absent',
  'doc.title': 'Devis et factures', 'doc.new': 'Nouveau document', 'doc.type': 'Type', 'doc.number': 'Numéro',
  'doc.draft': 'Brouillon (sans numéro)', 'doc.patient': 'Patient', 'doc.total': 'Total TTC', 'doc.subtotal': 'Total HT',
  'doc.tax': 'TVA', 'doc.issueDate': 'Date d’émission', 'doc.dueDate': 'Échéance', 'doc.lines': 'Lignes',
  'doc.description': 'Désignation', 'doc.quantity': 'Quantité', 'doc.unitPrice': 'Prix unitaire HT (€)',
  'doc.vat': 'TVA (%)', 'doc.addLine': 'Ajouter une ligne', 'doc.issue': 'Émettre', 'doc.cancelInvoice': 'Annuler la facture (avoir)',
  'doc.paid': 'Marquer payée', 'doc.cancelConfirm': 'Annuler cette facture ? Un avoir sera émis ; c’est définitif.', 'doc.accept': 'Accepté par le patient', 'doc.reject': 'Refusé', 'doc.convert': 'Convertir en facture',
  'doc.creditNote': 'Avoir {number}', 'doc.cancels': 'Annule la facture', 'doc.printable': 'Version imprimable',
  'doc.fromCatalogue': 'Depuis le catalogue', 'doc.lineTotal': 'Total HT',
  'dtype.quote': 'Devis', 'dtype.invoice': 'Facture', 'dtype.credit_note': 'Avoir',
  'dstatus.draft': 'Brouillon', 'dstatus.sent': 'Émis', 'dstatus.accepted': 'Accepté', 'dstatus.rejected': 'Refusé',
  'dstatus.paid': 'Payé', 'dstatus.cancelled': 'Annulé',
  'legal.vatExempt': 'TVA non applicable, article 261-4-1° du Code général des impôts (soins dispensés par les professions médicales et paramédicales).',
  'legal.payment': 'Paiement à réception. Pas d’escompte pour paiement anticipé.',
  'legal.late': 'En cas de retard de paiement : pénalités au taux d’intérêt légal ; pour un client professionnel, indemnité forfaitaire pour frais de recouvrement de 40 € (art. L441-10 et D441-5 du Code de commerce).',
  'legal.seller': 'Émis par', 'legal.client': 'Patient', 'legal.siret': 'SIRET : {siret}', 'legal.vatNumber': 'N° TVA intracommunautaire : {vat}',
  'legal.missing': '{what} : à compléter dans les réglages du cabinet', 'legal.address': 'Adresse',
  'admin.title': 'Administration', 'admin.staff': 'Équipe', 'admin.practitioners': 'Praticiens', 'admin.settings': 'Réglages',
  'admin.catalogue': 'Catalogue', 'admin.templates': 'Modèles de consentement', 'admin.audit': 'Journal d’audit',
  'admin.categories': 'Catégories', 'catg.new': 'Nouvelle catégorie', 'catg.edit': 'Renommer la catégorie', 'catg.description': 'Description',
  'cat.categories': 'Catégories', 'cat.edit': 'Modifier l’article', 'cat.noCategory': 'Aucune catégorie : créez-en dans l’onglet Catégories.',
  'pr.edit': 'Modifier le praticien', 'tpl.edit': 'Modifier le modèle',
  'tpl.newVersion': 'Ce modèle avait été signé : sa version {version} est créée ; les consentements signés gardent leur texte.',
  'u.inactive': 'Inactif', 'common.deleteConfirm': 'Supprimer « {what} » ?',
  's.preferences': 'Préférences', 's.legal': 'Mentions des factures', 's.siret': 'SIRET', 's.vatNumber': 'N° de TVA intracommunautaire',
  's.legalHint': 'Imprimés sur chaque facture : l’adresse du cabinet, son SIRET et son numéro de TVA intracommunautaire.',
  'u.role': 'Rôle', 'u.active': 'Actif', 'u.deactivate': 'Désactiver', 'u.activate': 'Réactiver', 'u.new': 'Nouveau compte',
  'role.admin': 'Administrateur', 'role.doctor': 'Médecin', 'role.secretary': 'Secrétaire', 'role.readonly': 'Lecture seule',
  'role.super_admin': 'Plateforme',
  'pr.specialty': 'Spécialité', 'pr.licenseNumber': 'N° RPPS', 'pr.new': 'Nouveau praticien',
  's.timezone': 'Fuseau horaire', 's.currency': 'Devise', 's.locale': 'Langue',
  'cat.name': 'Nom', 'cat.code': 'Code', 'cat.kind': 'Nature', 'cat.price': 'Prix HT (€)', 'cat.vat': 'TVA (%)',
  'cat.duration': 'Durée (min)', 'kind.product': 'Produit', 'kind.service': 'Prestation', 'cat.new': 'Nouvel article',
  'tpl.title': 'Titre', 'tpl.body': 'Texte', 'tpl.version': 'Version', 'tpl.new': 'Nouveau modèle',
  'audit.action': 'Action', 'audit.from': 'Du', 'audit.to': 'Au', 'audit.filter': 'Filtrer', 'audit.when': 'Quand',
  'audit.who': 'Qui', 'audit.what': 'Quoi', 'audit.resource': 'Ressource',
};

const en = {
  'lang.switch': 'Français', 'lang.other': 'fr',
  'nav.agenda': 'Schedule', 'nav.patients': 'Patients', 'nav.documents': 'Quotes & invoices',
  'nav.admin': 'Administration', 'nav.logout': 'Sign out', 'nav.main': 'Main navigation',
  'auth.login': 'Sign in', 'auth.register': 'Register a practice', 'auth.email': 'Email', 'auth.password': 'Password',
  'auth.submit': 'Sign in', 'auth.create': 'Create the practice', 'auth.toRegister': 'New practice? Register',
  'auth.toLogin': 'Already registered? Sign in', 'auth.clinicName': 'Practice name', 'auth.firstName': 'First name',
  'auth.lastName': 'Last name', 'auth.phone': 'Phone', 'auth.passwordHint': 'At least 8 characters.',
  'err.invalid_credentials': 'Wrong email or password.', 'err.too_many_attempts': 'Too many attempts. Try again in {wait}.',
  'err.clinic_inactive': 'This practice is suspended or closed: contact the platform operator.',
  'err.email_taken': 'An account with this email already exists.', 'err.registration_closed': 'Registration is closed.',
  'err.forbidden': 'Your role may not do this.', 'err.not_found': 'Not found (deleted?).', 'err.conflict': 'Conflict: {message}',
  'err.network': 'The server does not answer. Check the connection.', 'err.validation_failed': 'Some fields need fixing.',
  'err.server_busy': 'The server is busy, try again shortly.', 'err.clinic_unavailable': 'The practice database is unavailable, try again.',
  'err.generic': 'Error: {message}', 'session.idle': 'Signed out after {minutes} minutes without activity.',
  'session.expired': 'Session expired: sign in again.', 'session.ended': 'You are signed out.',
  'common.save': 'Save', 'common.cancel': 'Cancel', 'common.edit': 'Edit', 'common.delete': 'Delete', 'common.add': 'Add',
  'common.create': 'Create', 'common.close': 'Close', 'common.none': 'Nothing here.', 'common.loading': 'Loading…',
  'common.saved': 'Saved.', 'common.search': 'Search', 'common.all': 'All', 'common.status': 'Status', 'common.actions': 'Actions',
  'common.yes': 'Yes', 'common.no': 'No', 'common.previous': 'Previous', 'common.next': 'Next', 'common.today': 'Today',
  'common.print': 'Print', 'common.back': 'Back',
  'patients.search': 'Search a patient (name, email, phone)', 'patients.new': 'New patient', 'patients.count': '{n} patient(s)',
  'patients.edit': 'Edit patient', 'p.firstName': 'First name', 'p.lastName': 'Last name', 'p.birthDate': 'Date of birth',
  'p.gender': 'Gender', 'p.email': 'Email', 'p.phone': 'Phone', 'p.line1': 'Address', 'p.line2': 'Address line 2',
  'p.city': 'City', 'p.postalCode': 'Postcode', 'p.country': 'Country', 'p.nationalId': 'Social security number (NIR)',
  'p.notes': 'Notes', 'p.status': 'Status', 'gender.male': 'Male', 'gender.female': 'Female', 'gender.other': 'Other',
  'gender.unknown': 'Not stated', 'pstatus.active': 'Active', 'pstatus.inactive': 'Inactive', 'pstatus.deceased': 'Deceased',
  'patient.appointments': 'Appointments', 'patient.records': 'Medical records', 'patient.consents': 'Consents',
  'patient.documents': 'Quotes & invoices', 'patient.gdpr': 'GDPR', 'patient.export': 'Export data (JSON file)',
  'patient.erase': 'Erase the patient’s data', 'patient.eraseConfirm': 'Permanently erase this patient’s identifying data?',
  'patient.erased': 'Patient data erased.', 'patient.retention': 'Cannot erase: the law obliges the practice to keep:',
  'patient.retentionItem': '{kind} kept until {until} ({rule})', 'patient.exported': 'Export downloaded.',
  'kind.medical_record': 'Medical record', 'kind.invoice': 'Invoice', 'kind.credit_note': 'Credit note',
  'rec.type': 'Type', 'rec.title': 'Title', 'rec.content': 'Content', 'rec.recordedAt': 'Date', 'rec.add': 'Add to record',
  'rtype.consultation': 'Consultation', 'rtype.diagnosis': 'Diagnosis', 'rtype.prescription': 'Prescription',
  'rtype.allergy': 'Allergy', 'rtype.note': 'Note', 'rtype.vaccination': 'Vaccination', 'rtype.lab_result': 'Lab result',
  'consent.template': 'Template', 'consent.add': 'Request consent', 'consent.sign': 'Mark signed', 'consent.revoke': 'Revoke',
  'cstatus.pending': 'Pending', 'cstatus.signed': 'Signed', 'cstatus.revoked': 'Revoked',
  'agenda.title': 'Schedule', 'agenda.day': 'Day', 'agenda.week': 'Week', 'agenda.practitioner': 'Practitioner',
  'agenda.allPractitioners': 'Whole practice', 'agenda.book': 'New appointment', 'agenda.hint': 'Pick a free slot (+) to book, or an appointment to confirm, cancel or move it. Drag an appointment to another slot to move it, its bottom edge to change its length.',
  'agenda.resizeHandle': 'Drag to change the length', 'agenda.patient': 'Patient',
  'agenda.duration': 'Duration (minutes)', 'agenda.reason': 'Reason', 'agenda.bookAt': 'Appointment on {when}',
  'agenda.overlap': 'Slot taken: {who} has another appointment overlapping this one.', 'agenda.move': 'Move', 'agenda.movePickButton': 'Move to a slot…', 'agenda.movePick': 'Pick the new slot in the schedule (+).',
  'agenda.moveTo': 'New date and time', 'agenda.confirm': 'Confirm', 'agenda.cancelAppt': 'Cancel appointment',
  'agenda.noShow': 'No-show', 'agenda.complete': 'Completed', 'agenda.noPractitioner': 'No practitioner yet: add one in Administration.',
  'agenda.pickPatient': 'Type a name, then pick the patient.', 'agenda.slot': 'Free slot {time}',
  'agenda.resize': 'Change length', 'agenda.length': 'Length: {n} min',
  'items.title': 'Acts', 'items.none': 'No act.', 'items.act': 'Act from the catalogue', 'items.quantity': 'Quantity',
  'items.add': 'Add the act', 'items.remove': 'Remove {what}', 'items.total': 'Total excl. VAT: {total}',
  'items.noCatalogue': 'Empty catalogue: add acts in Administration.', 'items.quote': 'Create a quote with these acts',
  'astatus.scheduled': 'Scheduled', 'astatus.confirmed': 'Confirmed', 'astatus.completed': 'Completed',
  'astatus.cancelled': 'Cancelled', 'astatus.no_show': 'No-show',
  'doc.title': 'Quotes & invoices', 'doc.new': 'New document', 'doc.type': 'Type', 'doc.number': 'Number',
  'doc.draft': 'Draft (no number)', 'doc.patient': 'Patient', 'doc.total': 'Total incl. VAT', 'doc.subtotal': 'Total excl. VAT',
  'doc.tax': 'VAT', 'doc.issueDate': 'Issue date', 'doc.dueDate': 'Due date', 'doc.lines': 'Lines',
  'doc.description': 'Description', 'doc.quantity': 'Quantity', 'doc.unitPrice': 'Unit price excl. VAT (€)',
  'doc.vat': 'VAT (%)', 'doc.addLine': 'Add a line', 'doc.issue': 'Issue', 'doc.cancelInvoice': 'Cancel invoice (credit note)',
  'doc.paid': 'Mark paid', 'doc.cancelConfirm': 'Cancel this invoice? A credit note will be issued; this cannot be undone.', 'doc.accept': 'Accepted by the patient', 'doc.reject': 'Rejected', 'doc.convert': 'Convert to invoice',
  'doc.creditNote': 'Credit note {number}', 'doc.cancels': 'Cancels invoice', 'doc.printable': 'Printable view',
  'doc.fromCatalogue': 'From the catalogue', 'doc.lineTotal': 'Total excl. VAT',
  'dtype.quote': 'Quote', 'dtype.invoice': 'Invoice', 'dtype.credit_note': 'Credit note',
  'dstatus.draft': 'Draft', 'dstatus.sent': 'Issued', 'dstatus.accepted': 'Accepted', 'dstatus.rejected': 'Rejected',
  'dstatus.paid': 'Paid', 'dstatus.cancelled': 'Cancelled',
  'legal.vatExempt': 'VAT not applicable, article 261-4-1° of the French tax code (care given by medical professions).',
  'legal.payment': 'Payable on receipt. No discount for early payment.',
  'legal.late': 'Late payment: penalties at the legal interest rate; for business clients, a fixed recovery fee of €40 (French commercial code, L441-10 and D441-5).',
  'legal.seller': 'Issued by', 'legal.client': 'Patient', 'legal.siret': 'SIRET: {siret}', 'legal.vatNumber': 'VAT number: {vat}',
  'legal.missing': '{what}: to be completed in the practice settings', 'legal.address': 'Address',
  'admin.title': 'Administration', 'admin.staff': 'Staff', 'admin.practitioners': 'Practitioners', 'admin.settings': 'Settings',
  'admin.catalogue': 'Catalogue', 'admin.templates': 'Consent templates', 'admin.audit': 'Audit trail',
  'admin.categories': 'Categories', 'catg.new': 'New category', 'catg.edit': 'Rename category', 'catg.description': 'Description',
  'cat.categories': 'Categories', 'cat.edit': 'Edit item', 'cat.noCategory': 'No category yet: create some in the Categories tab.',
  'pr.edit': 'Edit practitioner', 'tpl.edit': 'Edit template',
  'tpl.newVersion': 'This template had been signed: its version {version} is created; signed consents keep their text.',
  'u.inactive': 'Inactive', 'common.deleteConfirm': 'Delete “{what}”?',
  's.preferences': 'Preferences', 's.legal': 'What invoices say of the practice', 's.siret': 'SIRET', 's.vatNumber': 'VAT number',
  's.legalHint': 'Printed on every invoice: the practice’s address, SIRET and intra-community VAT number.',
  'u.role': 'Role', 'u.active': 'Active', 'u.deactivate': 'Deactivate', 'u.activate': 'Reactivate', 'u.new': 'New account',
  'role.admin': 'Administrator', 'role.doctor': 'Doctor', 'role.secretary': 'Secretary', 'role.readonly': 'Read-only',
  'role.super_admin': 'Platform', 'pr.specialty': 'Specialty', 'pr.licenseNumber': 'Licence number (RPPS)', 'pr.new': 'New practitioner',
  's.timezone': 'Time zone', 's.currency': 'Currency', 's.locale': 'Language',
  'cat.name': 'Name', 'cat.code': 'Code', 'cat.kind': 'Kind', 'cat.price': 'Price excl. VAT (€)', 'cat.vat': 'VAT (%)',
  'cat.duration': 'Duration (min)', 'kind.product': 'Product', 'kind.service': 'Service', 'cat.new': 'New item',
  'tpl.title': 'Title', 'tpl.body': 'Text', 'tpl.version': 'Version', 'tpl.new': 'New template',
  'audit.action': 'Action', 'audit.from': 'From', 'audit.to': 'To', 'audit.filter': 'Filter', 'audit.when': 'When',
  'audit.who': 'Who', 'audit.what': 'What', 'audit.resource': 'Resource',
};

const dictionaries = { fr, en };
let current = 'fr';

export function lang() { return current; }
export function setLang(code) {
  current = dictionaries[code] ? code : 'fr';
  document.documentElement.lang = current;
}

/** The text for `key`, with `{name}` replaced from `vars`; French when English lacks it. */
export function t(key, vars = {}) {
  const text = dictionaries[current][key] ?? fr[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (vars[name] ?? ''));
}

const locale = () => (current === 'fr' ? 'fr-FR' : 'en-GB');
// Times are the clinic's (`GET /clinic`: its timezone), not the browser's.
let zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
export function setTimeZone(tz) {
  try { new Intl.DateTimeFormat('en', { timeZone: tz }); zone = tz; } catch { /* unknown zone: keep the browser's */ }
}
export function timeZone() { return zone; }
const partsFormat = new Map();
/** The clinic's wall clock at an instant: {y, m, d, hh, mm} (m from 1). */
export function zoned(date) {
  if (!partsFormat.has(zone)) {
    partsFormat.set(zone, new Intl.DateTimeFormat('en-US', { timeZone: zone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric' }));
  }
  const p = Object.fromEntries(partsFormat.get(zone).formatToParts(date).map((x) => [x.type, Number(x.value)]));
  return { y: p.year, m: p.month, d: p.day, hh: p.hour % 24, mm: p.minute };
}
/** The instant at a wall-clock time in the clinic (m from 1; minutes may exceed 59). */
export function fromZoned(y, m, d, hh = 0, mm = 0) {
  const wall = Date.UTC(y, m - 1, d, hh, mm);
  const offset = (t) => { const p = zoned(new Date(t)); return Date.UTC(p.y, p.m - 1, p.d, p.hh, p.mm) - Math.floor(t / 60000) * 60000; };
  let t = wall - offset(wall);
  t = wall - offset(t);
  return new Date(t);
}
export const fmtDate = (iso) => (iso ? (iso.length === 10
  ? new Date(`${iso}T12:00:00Z`).toLocaleDateString(locale(), { timeZone: 'UTC' })
  : new Date(iso).toLocaleDateString(locale(), { timeZone: zone })) : '');
export const fmtDateTime = (iso) => (iso ? new Date(iso).toLocaleString(locale(), { dateStyle: 'medium', timeStyle: 'short', timeZone: zone }) : '');
export const fmtTime = (date) => date.toLocaleTimeString(locale(), { hour: '2-digit', minute: '2-digit', timeZone: zone });
/** A calendar day (a Date at its UTC midnight), as it is written. */
export const fmtDay = (date) => date.toLocaleDateString(locale(), { weekday: 'short', day: 'numeric', month: 'short', timeZone: 'UTC' });
export const fmtMoney = (cents, currency = 'EUR') =>
  new Intl.NumberFormat(locale(), { style: 'currency', currency }).format((cents || 0) / 100);
export function fmtWait(seconds) {
  const minutes = Math.ceil(seconds / 60);
  if (seconds < 60) return current === 'fr' ? `${seconds} s` : `${seconds} s`;
  return current === 'fr' ? `${minutes} min` : `${minutes} min`;
}

// The API's 422 details say what is wrong with a field in English; the app
// shows them in the page's language. Each rule: the API's message (a
// pattern, its numbers captured), then French and English. A message no
// rule knows is shown as the API wrote it.
const FIELD_MESSAGES = [
  [/^is required$/, 'Champ obligatoire.', 'Required.'],
  [/^must not be empty$/, 'Ne doit pas être vide.', 'Must not be empty.'],
  [/^must not be null$/, 'Ne doit pas être vide.', 'Must not be empty.'],
  [/^must be at most (\d+) characters$/, '{1} caractères au maximum.', 'At most {1} characters.'],
  [/^must be at least (\d+) characters$/, 'Au moins {1} caractères.', 'At least {1} characters.'],
  [/^must not contain (control|NUL) characters$/, 'Ne doit pas contenir de caractères de contrôle.', 'Must not contain control characters.'],
  [/^must be a valid email address$/, 'Adresse e-mail invalide.', 'Not a valid email address.'],
  [/^must be a phone number/, 'Numéro de téléphone invalide (chiffres, espaces, + . - ( )).', 'Not a phone number (digits, spaces, + . - ( )).'],
  [/^must be an ISO 3166-1 alpha-2 country code/, 'Code pays de deux lettres, par exemple FR.', 'A two-letter country code, such as FR.'],
  [/currency code such as EUR$/, 'Code devise de trois lettres, par exemple EUR.', 'A three-letter currency code, such as EUR.'],
  [/^must be an IANA time zone/, 'Fuseau horaire inconnu : par exemple Europe/Paris.', 'Unknown time zone: for example Europe/Paris.'],
  [/^must be a language tag/, 'Code de langue, par exemple fr-FR ou en.', 'A language tag, such as fr-FR or en.'],
  [/^must be a date as YYYY-MM-DD$/, 'Date invalide.', 'Not a valid date.'],
  [/^must be an RFC 3339 timestamp/, 'Date et heure invalides.', 'Not a valid date and time.'],
  [/^must be after 1890-01-01$/, 'Doit être postérieure au 1er janvier 1890.', 'Must be after 1 January 1890.'],
  [/^must be between the years 1900 and 9999$/, 'Année entre 1900 et 9999.', 'A year between 1900 and 9999.'],
  [/^must not be in the future$/, 'Ne peut pas être dans le futur.', 'Cannot be in the future.'],
  [/^must be after startAt$/, 'Doit être après le début.', 'Must be after the start.'],
  [/^must not be before issueDate$/, 'Ne peut pas précéder la date d’émission.', 'Cannot be before the issue date.'],
  [/^must be one of: (.*)$/, 'Valeur non permise (choix : {1}).', 'Not allowed (one of: {1}).'],
  [/^must be between (\d+) and (\d+)$/, 'Entre {1} et {2}.', 'Between {1} and {2}.'],
  [/^must be 0 or more$/, 'Doit être positif ou nul.', 'Must be 0 or more.'],
  [/^must be more than 0 minutes$/, 'Doit durer plus de 0 minute.', 'Must last more than 0 minutes.'],
  [/^must be an integer number of cents/, 'Montant invalide (positif ou nul).', 'Not a valid amount (0 or more).'],
  [/^must be in basis points/, 'Taux de TVA entre 0 et 100 %.', 'A VAT rate from 0 to 100 %.'],
  [/^must be a NIR of 15 characters/, 'Le NIR compte 15 caractères (13 et une clé de 2 chiffres).', 'A NIR has 15 characters (13 and a 2-digit key).'],
  [/^the NIR key does not match the number$/, 'La clé du NIR ne correspond pas au numéro.', 'The NIR key does not match the number.'],
  [/^a NIR is made of digits/, 'Un NIR est fait de chiffres (2A ou 2B pour la Corse).', 'A NIR is made of digits (2A or 2B for Corsica).'],
  [/^a NIR starts with/, 'Un NIR commence par 1, 2, 3, 4, 7 ou 8.', 'A NIR starts with 1, 2, 3, 4, 7 or 8.'],
  [/^must be a SIRET/, 'SIRET invalide : 14 chiffres dont le dernier est une clé de contrôle.', 'Not a SIRET: 14 digits, the last one a check digit.'],
  [/^must be a VAT number/, 'Numéro de TVA invalide, par exemple FR40303265045.', 'Not a VAT number, such as FR40303265045.'],
  [/^cannot be cleared$/, 'Ne peut pas être vidé.', 'Cannot be cleared.'],
  [/^cannot be changed/, 'Ne peut pas être modifié.', 'Cannot be changed.'],
  [/^(does not name a record of this clinic|no such patient in this clinic)$/, 'Introuvable dans ce cabinet.', 'Not found in this practice.'],
  [/^names a practitioner who is not active$/, 'Ce praticien est désactivé.', 'This practitioner is deactivated.'],
  [/^names a product or service that is not active$/, 'Cet article du catalogue est désactivé.', 'This catalogue item is deactivated.'],
  [/^must be a staff account of this clinic$/, 'Doit être un compte de ce cabinet.', 'Must be an account of this practice.'],
  [/^super_admin cannot be given/, 'Ce rôle ne peut pas être donné.', 'This role cannot be given.'],
  [/^must be true or false$/, 'Doit être oui ou non.', 'Must be yes or no.'],
  [/^a record needs a title or a content$/, 'Un titre ou un contenu est nécessaire.', 'A title or a content is needed.'],
  [/^a document needs at least one item/, 'Au moins une ligne est nécessaire pour émettre.', 'At least one line is needed to issue.'],
  [/^must have at most (\d+) items$/, '{1} lignes au maximum.', 'At most {1} lines.'],
];

/** A 422 detail's message in the page's language. */
export function fieldMessage(detail) {
  const message = detail.message || '';
  for (const [pattern, french, english] of FIELD_MESSAGES) {
    const m = message.match(pattern);
    if (m) return (current === 'fr' ? french : english).replace(/\{(\d)\}/g, (_, i) => m[Number(i)]);
  }
  return message;
}

/** A failed API answer in words. */
export function explain(r) {
  const code = r.error ? r.error.code : 'internal';
  if (code === 'too_many_attempts') return t('err.too_many_attempts', { wait: fmtWait(r.retryAfter || 60) });
  if (code === 'conflict') return t('err.conflict', { message: r.error.message });
  const key = `err.${code}`;
  const text = t(key);
  return text === key ? t('err.generic', { message: (r.error && r.error.message) || r.status }) : text;
}
